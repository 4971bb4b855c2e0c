// A seeded fuzz over every public method: each call gets wrong types and values, and must either
// return or throw a TypeError, RangeError or VfioError. The calls run in a child process, so a
// crash is counted, not fatal.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertSurvived, runCase } from './child.mjs';

const SEED = Number(process.env.VFIO_FUZZ_SEED ?? 20261124);
const CALLS = Number(process.env.VFIO_FUZZ_CALLS ?? 6000);

const body = `
  const seed = ${SEED};
  let state = seed >>> 0;
  const rand = () => { state = (state + 0x6d2b79f5) >>> 0; let t = state; t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  const pick = (a) => a[Math.floor(rand() * a.length)];

  const iommufd = vfio.Iommufd.open();
  const dev = vfio.VfioDevice.open(edu.cdevPath);
  dev.bind(iommufd);
  const ioas = iommufd.allocIoas();
  dev.attach(ioas);
  const buf = vfio.DmaBuffer.alloc(8192);
  ioas.map(buf, { iova: 0x100000 });
  const region = dev.region(0);
  const bar = region.map();
  const irqs = dev.enableIrq('msi').unref();
  const hwpt = iommufd.allocHwpt(dev, ioas);
  const container = vfio.VfioContainer.open();
  const spare = vfio.DmaBuffer.alloc(4096);

  // Wrong types and values only: nothing here is a valid offset, size, index, path or object.
  const detached = new ArrayBuffer(8); structuredClone(detached, { transfer: [detached] });
  const POOL = [undefined, null, -1, -0.5, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 2 ** 64, -(2 ** 31), 0x1_0000_0001,
    -1n, 2n ** 64n, 2n ** 70n, '', 'x', '0', '\\0', '/dev/null\\0x', 'a'.repeat(5000), Symbol('s'), {}, [], [1, 2],
    () => 0, new Proxy({}, {}), new Proxy(buf, {}), new Uint8Array(3), new ArrayBuffer(4096), detached,
    new SharedArrayBuffer(8), new DataView(new ArrayBuffer(2)), new ArrayBuffer(8, { maxByteLength: 16 }),
    new Date(0), /re/, new Error('e'), Object.create(null), { valueOf() { throw new Error('valueOf'); } },
    { get iova() { throw new Error('getter'); } }, true, false, 0.1];

  // Calls that would end the objects under test, or block: exercised elsewhere.
  const SKIP = new Set(['constructor', 'close', 'free', 'destroy', 'disable', 'reset', 'hotReset', 'detach', 'waitSync',
    'unmapAll', '_dispose', 'emit', 'bind']);
  const targets = { iommufd, dev, ioas, buf, region, bar, config: dev.config, irqs, hwpt, container };
  const calls = [];
  for (const [name, obj] of Object.entries(targets)) {
    for (let p = Object.getPrototypeOf(obj); p && p !== Object.prototype && p.constructor.name !== 'EventEmitter'; p = Object.getPrototypeOf(p)) {
      for (const key of Object.getOwnPropertyNames(p)) {
        if (SKIP.has(key) || key.startsWith('_')) continue;
        const d = Object.getOwnPropertyDescriptor(p, key);
        if (typeof d.value === 'function') calls.push([name + '.' + key, (...a) => obj[key](...a)]);
        else if (d.get) calls.push([name + '.' + key, () => obj[key]]);
      }
    }
  }
  for (const [cls, names] of [[vfio.Iommufd, ['open', 'fromFd']], [vfio.VfioDevice, ['open', 'fromFd']],
    [vfio.DmaBuffer, ['alloc', 'fromShared']], [vfio.MappedRegion, ['fromShared']], [vfio.VfioContainer, ['open']],
    [vfio.VfioGroup, ['open']]]) {
    for (const n of names) calls.push([cls.name + '.' + n, (...a) => cls[n](...a)]);
  }
  for (const n of ['cdevPathFor', 'bindToVfioPci', 'unbindFromVfioPci', 'normalizeBdf', 'mdevDevice', 'sendFds', 'receiveFds']) {
    calls.push([n, (...a) => vfio[n](...a)]);
  }

  const ok = (e) => e instanceof TypeError || e instanceof RangeError || e instanceof vfio.VfioError;
  let returned = 0, thrown = 0;
  const wrong = [];
  const methods = new Set();
  for (let i = 0; i < ${CALLS}; i++) {
    const [name, fn] = pick(calls);
    methods.add(name);
    const args = Array.from({ length: Math.floor(rand() * 4) }, () => pick(POOL));
    try {
      const r = fn(...args);
      if (r && typeof r.then === 'function') r.catch(() => {});
      // New resources a call made (a mapping, an iommufd) are closed; the objects under test are not.
      if (r && typeof r === 'object' && typeof r.close === 'function' && !Object.values(targets).includes(r)) r.close();
      returned++;
    } catch (e) {
      thrown++;
      if (!ok(e)) wrong.push(name + '(' + args.map((a) => typeof a).join(', ') + '): ' + (e && e.name) + ': ' + (e && e.message));
    }
  }
  // The objects still work afterwards.
  assert.equal(bar.read32(0) & 0xffff, 0xed);
  assert.equal(ioas.iovaOf(buf, 0), 0x100000n);
  console.log(JSON.stringify({ seed, calls: ${CALLS}, methods: methods.size, returned, thrown, wrong: wrong.length, examples: wrong.slice(0, 5) }));
  irqs.disable(); bar.close(); dev.close(); iommufd.close(); container.close();
  buf.free(); spare.free();
  console.log('survived');
  process.exit(0);`;

test(`fuzz: ${CALLS} calls with wrong arguments over every public method throw only TypeError, RangeError or VfioError`, async () => {
  const r = await runCase(body, { timeoutMs: 300_000 });
  assertSurvived(r);
  const summary = JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{')));
  console.log(`# fuzz: seed ${summary.seed}, ${summary.calls} calls over ${summary.methods} methods, ` +
    `${summary.thrown} threw, ${summary.returned} returned, 0 crashes, ${summary.wrong} wrong error classes`);
  assert.deepEqual(summary.examples, [], 'wrong error classes');
  assert.equal(summary.wrong, 0);
  assert.ok(summary.methods >= 60, `${summary.methods} methods were reached`);
});
