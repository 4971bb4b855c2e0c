// The MMIO writes as V8 fast API calls (native/fast_calls.cc): where vfio_fast.node is built they
// are what optimized code calls, and every input the N-API call refuses is refused the same way,
// from optimized code too. A /dev/zero mapping stands in for a BAR (a real Mapping handle, no
// device needed). Each case runs in a child with --allow-natives-syntax, so V8 optimizes the
// calling function when the case says, not when it happens to.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { test } from 'node:test';

const require = createRequire(import.meta.url);
const nativeJs = new URL('../../dist/native.js', import.meta.url).pathname;
const { fastCallsInclude } = require('../../scripts/v8-fast-calls.js');

/**
 * Run `body` in a child (an async function body; `n` = dist/native.js, `m`/`key`/`view` = a 4 KiB
 * mapping, `opt(f, ...args)` optimizes f and calls it); its stdout.
 */
function child(body, env = {}, flags = []) {
  const script = `
    const assert = require('node:assert/strict');
    const fs = require('node:fs');
    const n = require(${JSON.stringify(nativeJs)});
    const { native, hot, napiCalls } = n;
    const status = n.fastCalls();
    const zero = native.deviceFromFd(fs.openSync('/dev/zero', 'r+'), true);
    const m = native.deviceMmap(zero, 0, 4096, true);
    const key = native.handleKey(m);
    const view = new Uint32Array(native.mappingArrayBuffer(m));
    function opt(f, ...args) {
      %PrepareFunctionForOptimization(f);
      try { f(...args); } catch {}
      try { f(...args); } catch {}
      %OptimizeFunctionOnNextCall(f);
      return f(...args);
    }
    (async () => {
      ${body}
    })().then(() => console.log('done'), (e) => { console.error(e); process.exit(1); });`;
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', ...flags, '-e', script], {
    encoding: 'utf8', env: { ...process.env, ...env },
  });
  assert.equal(r.signal, null, `the child died of ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /done/);
  return r.stdout;
}

const built = fastCallsInclude();

test('the MMIO writes are fast calls wherever a v8-fast-api-calls.h for this V8 was found at build time', () => {
  assert.ok(built.dir, `vfio_fast.node cannot be built here: ${built.why}`);
  const out = child('console.log(JSON.stringify({ active: status.active, why: status.why }));');
  assert.deepEqual(JSON.parse(out.split('\n')[0]), { active: true, why: null });
});

test('an optimized write32 is a fast call: it lands and takes no slow callback', () => {
  child(`
    assert.ok(status.active, status.why);
    function w(o, v) { hot.mmioWrite32(m, key, o, v); }
    opt(w, 0, 1);
    const before = status.slowCalls();
    for (let i = 0; i < 10000; i++) w(8, i);
    assert.equal(view[2], 9999);
    assert.equal(status.slowCalls() - before, 0, 'no call of the optimized loop took the slow path');
  `);
});

test('write8 and write16 land at their width and leave the neighbouring bytes alone', () => {
  child(`
    function w8(o, v) { hot.mmioWrite8(m, key, o, v); }
    function w16(o, v) { hot.mmioWrite16(m, key, o, v); }
    view[4] = 0;
    opt(w8, 16, 0xab);
    opt(w16, 18, 0xcdef);
    assert.equal(view[4], 0xcdef00ab);
    assert.throws(() => w8(16, 0x100), RangeError);
    assert.throws(() => w16(18, 0x10000), RangeError);
    assert.throws(() => w16(17, 1), /aligned/);
    assert.equal(view[4], 0xcdef00ab, 'no refused write touched the memory');
  `);
});

test('optimized code gets the N-API call\'s error for every bad offset and value, and writes nothing', () => {
  child(`
    // (A string or other non-number is the TypeScript layer's to refuse: MappedRegion checks types.)
    const cases = [[4096, 1], [4094, 1], [2, 1], [-4, 1], [0.5, 1], [NaN, 1], [Infinity, 1], [0, -1], [0, 1.5], [0, 2 ** 32], [0, NaN], [undefined, 1]];
    for (const [o, v] of cases) {
      let expected;
      try { napiCalls.write32(m, o, v); } catch (e) { expected = e; }
      assert.ok(expected, 'the N-API call refuses ' + o + ', ' + v);
      view[0] = 0x5a5a5a5a;
      function w(oo, vv) { hot.mmioWrite32(m, key, oo, vv); }
      w(0, 0x5a5a5a5a);
      let got;
      try { opt(w, o, v); } catch (e) { got = e; }
      assert.ok(got, 'the fast call refuses ' + o + ', ' + v);
      assert.equal(got.constructor, expected.constructor);
      assert.equal(got.message, expected.message);
      assert.equal(view[0], 0x5a5a5a5a);
    }
  `);
});

test('after close the optimized write throws EBADF, as the N-API call does', () => {
  child(`
    function w(v) { hot.mmioWrite32(m, key, 0, v); }
    opt(w, 1);
    native.mappingClose(m);
    assert.throws(() => w(2), { code: 'EBADF' });
    assert.throws(() => napiCalls.write32(m, 0, 2), { code: 'EBADF' });
  `);
});

test('a suspended mapping refuses the optimized write with EIO, and takes it again once resumed', () => {
  child(`
    const other = native.deviceMmap(zero, 0, 4096, true);
    const otherView = new Uint32Array(native.mappingArrayBuffer(other));
    const otherKey = native.handleKey(other);
    function w(v) { hot.mmioWrite32(other, otherKey, 0, v); }
    opt(w, 1);
    native.mappingSetSuspended(other, true);
    assert.throws(() => w(2), { code: 'EIO' });
    native.mappingSetSuspended(other, false);
    w(3);
    assert.equal(new Uint32Array(native.mappingArrayBuffer(other))[0], 3);
  `);
});

test('a key that is no live mapping of this thread is never followed: the handle decides', () => {
  child(`
    function w(k, v) { hot.mmioWrite32(m, k, 0, v); }
    for (const k of [0, 1, key + 8, 2 ** 53, -1, 1.5, Infinity]) {
      opt(w, k, 7);
      assert.equal(view[0], 7, 'the N-API call behind it wrote through the handle');
      view[0] = 0;
    }
    const dmaBuf = native.dmaAlloc(4096, false);
    assert.throws(() => napiCalls.write32(dmaBuf, 0, 1), TypeError);
    function wd(v) { hot.mmioWrite32(dmaBuf, native.handleKey(m) + 4096, 0, v); }
    assert.throws(() => opt(wd, 1), TypeError, 'not a mapping handle');
  `);
});

test('install() refuses anything but a live env key of the loaded addon, without crashing', () => {
  child(`
    const path = require('node:path');
    const dir = path.join(path.dirname(${JSON.stringify(nativeJs)}), '..', 'build', 'Release');
    const fast = require(path.join(dir, 'vfio_fast.node'));
    const f = () => {};
    const addon = path.join(dir, 'vfio.node');
    // A library that is loaded but is not the addon.
    const libc = fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).find((p) => /libc\\.so/.test(p ?? ''));
    assert.ok(libc);
    const four = [f, f, f, f];
    for (const args of [[], [addon], [addon, 1, four], [addon, native.fastCallEnvKey() + 8, four],
      ['/nonexistent.node', native.fastCallEnvKey(), four], [libc, native.fastCallEnvKey(), four],
      [addon, native.fastCallEnvKey(), [f, f, f]], [addon, native.fastCallEnvKey(), [f, f, f, 1]], [addon, '1', four]]) {
      assert.throws(() => fast.install(...args), TypeError);
    }
    const again = fast.install(addon, native.fastCallEnvKey(), [napiCalls.write8, napiCalls.write16, napiCalls.write32, napiCalls.irqRead]);
    again.mmioWrite32(m, key, 0, 11);
    assert.equal(view[0], 11);
  `);
});

test('an optimized eventfd read (Interrupts.drain) is a fast call: it clears the count, 0 when none', () => {
  child(`
    const w = native.irqCreate(() => {});
    const wk = native.handleKey(w);
    function r() { return hot.irqRead(w, wk); }
    opt(r);
    const before = status.slowCalls();
    assert.equal(r(), 0);
    native.irqSignal(w); native.irqSignal(w); native.irqSignal(w);
    assert.equal(r(), 3);
    assert.equal(r(), 0);
    assert.equal(status.slowCalls() - before, 0);
    native.irqClose(w);
  `);
});

test('the optimized eventfd read of a closed watcher, a key of another handle, or a non-watcher gets the N-API error', () => {
  child(`
    const w = native.irqCreate(() => {});
    const wk = native.handleKey(w);
    function r(h, k) { return hot.irqRead(h, k); }
    opt(r, w, wk);
    native.irqSignal(w);
    assert.equal(r(w, key), 1, 'a mapping key is no watcher: the N-API call reads through the handle');
    assert.throws(() => r(m, key), TypeError, 'neither the key nor the handle is a watcher');
    native.irqClose(w);
    let expected;
    try { napiCalls.irqRead(w); } catch (e) { expected = e; }
    assert.ok(expected);
    assert.throws(() => r(w, wk), { code: expected.code, message: expected.message });
  `);
});

test('handleKey refuses anything but a live handle of this thread with a TypeError', () => {
  child(`
    for (const bad of [undefined, null, 0, key, 'x', {}, [], () => {}, new ArrayBuffer(8)]) {
      assert.throws(() => native.handleKey(bad), { name: 'TypeError', message: 'expected a native handle' });
    }
    assert.equal(native.handleKey(m), key, 'one handle, one key');
    assert.notEqual(native.handleKey(zero), key);
  `);
});

test('the fast calls keep nothing alive: a mapping written through them and dropped is collected and unmapped', () => {
  child(`
    const zeros = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('/dev/zero')).length;
    const before = zeros();
    (() => {
      const m2 = native.deviceMmap(zero, 0, 4096, true);
      const k2 = native.handleKey(m2);
      function w(v) { hot.mmioWrite32(m2, k2, 0, v); }
      opt(w, 1);
      for (let i = 0; i < 1000; i++) w(i);
      assert.equal(zeros(), before + 1);
    })();
    for (let i = 0; i < 20 && zeros() > before; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }
    assert.equal(zeros(), before, 'the dropped mapping was munmapped by its finalizer');
  `, {}, ['--expose-gc']);
});

test('VFIO_FAST_CALLS=0 keeps the N-API calls, which write the same', () => {
  const out = child(`
    console.log(status.active, status.why);
    function w(v) { hot.mmioWrite32(m, key, 0, v); }
    opt(w, 5);
    assert.equal(view[0], 5);
    assert.equal(status.slowCalls(), 0);
  `, { VFIO_FAST_CALLS: '0' });
  assert.match(out, /^false VFIO_FAST_CALLS=0/);
});

test('each worker installs its own fast calls; a worker ended mid-loop leaves the others working', () => {
  child(`
    const { Worker } = require('node:worker_threads');
    const src = \`
      const { parentPort } = require('node:worker_threads');
      const fs = require('node:fs');
      const n = require(\${JSON.stringify(${JSON.stringify(nativeJs)})});
      const zero = n.native.deviceFromFd(fs.openSync('/dev/zero', 'r+'), true);
      const m = n.native.deviceMmap(zero, 0, 4096, true);
      const key = n.native.handleKey(m);
      parentPort.postMessage(n.fastCalls().active);
      for (;;) n.hot.mmioWrite32(m, key, 0, 1);\`;
    const worker = new Worker(src, { eval: true });
    const active = await new Promise((r) => worker.once('message', r));
    assert.equal(active, true);
    await new Promise((r) => setTimeout(r, 200));
    await worker.terminate();
    function w(v) { hot.mmioWrite32(m, key, 0, v); }
    opt(w, 9);
    for (let i = 0; i < 1000; i++) w(i);
    assert.equal(view[0], 999);
  `);
});
