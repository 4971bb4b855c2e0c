// sendFds / receiveFds over the library's socket pair, with ordinary files (no VFIO needed).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, test } from 'node:test';
import { Iommufd, receiveFds, sendFds, socketPair } from '../../dist/index.js';

const [a, b] = socketPair();
after(() => {
  fs.closeSync(a);
  fs.closeSync(b);
});

test('fds sent arrive as new fds to the same files, with the message, in order', () => {
  const x = fs.openSync('/proc/self/status', 'r');
  const y = fs.openSync('/dev/null', 'r');
  sendFds(a, [x, y], 'two');
  const got = receiveFds(b, { timeoutMs: 1000 });
  assert.equal(new TextDecoder().decode(got.message), 'two');
  assert.equal(got.fds.length, 2);
  assert.ok(!got.fds.includes(x) && !got.fds.includes(y), 'duplicates, not the same numbers');
  assert.equal(fs.fstatSync(got.fds[1]).rdev, fs.fstatSync(y).rdev);
  assert.equal(fs.fstatSync(got.fds[0]).ino, fs.fstatSync(x).ino);
  [x, y, ...got.fds].forEach((fd) => fs.closeSync(fd));
});

test('a message without fds arrives with none; the default message is one byte', () => {
  sendFds(a, []);
  assert.deepEqual(receiveFds(b, { timeoutMs: 1000 }), { fds: [], message: Uint8Array.of(0x46) });
});

test('a message with more fds than maxFds is refused with EMSGSIZE and its fds are closed', () => {
  const x = fs.openSync('/dev/null', 'r');
  const before = fs.readdirSync('/proc/self/fd').length;
  sendFds(a, [x, x, x]);
  assert.throws(() => receiveFds(b, { maxFds: 1, timeoutMs: 1000 }),
    { name: 'VfioError', code: 'EMSGSIZE', syscall: 'recvmsg', message: /more fds or bytes than options\.maxFds/ });
  assert.equal(fs.readdirSync('/proc/self/fd').length, before, 'no received fd leaked');
  fs.closeSync(x);
});

test('receiveFds times out with ETIMEDOUT, and is null once the peer closed', () => {
  assert.throws(() => receiveFds(b, { timeoutMs: 30 }), { code: 'ETIMEDOUT', message: /timeoutMs/ });
  const [c, d] = socketPair();
  fs.closeSync(c);
  assert.equal(receiveFds(d, { timeoutMs: 1000 }), null);
  fs.closeSync(d);
});

test('bad arguments are TypeError or RangeError naming them; a non-socket is ENOTSOCK', () => {
  assert.throws(() => sendFds(-1, []), { name: 'RangeError', message: /socket/ });
  assert.throws(() => sendFds(a, 'x'), { name: 'TypeError', message: /fds must be an array/ });
  assert.throws(() => sendFds(a, ['1']), { name: 'TypeError', message: /fds\[0\]/ });
  assert.throws(() => sendFds(a, [0], ''), { name: 'RangeError', message: /at least one byte/ });
  assert.throws(() => sendFds(a, [0], 5), { name: 'TypeError', message: /message/ });
  assert.throws(() => sendFds(a, new Array(254).fill(0)), { name: 'RangeError', message: /253/ });
  assert.throws(() => receiveFds(b, { maxFds: 254 }), RangeError);
  assert.throws(() => receiveFds(b, { maxBytes: 0 }), RangeError);
  assert.throws(() => receiveFds(b, { timeoutMs: -5 }), RangeError);
  const file = fs.openSync('/dev/null', 'r');
  assert.throws(() => receiveFds(file, { timeoutMs: 10 }), { name: 'VfioError', code: 'ENOTSOCK' });
  assert.throws(() => sendFds(file, [0]), { name: 'VfioError', code: 'ENOTSOCK', syscall: 'sendmsg' });
  fs.closeSync(file);
});

test('a closed library object is refused before anything is sent', () => {
  const ictx = Iommufd.fromFd(fs.openSync('/dev/null', 'r'), { own: true });
  ictx.close();
  assert.throws(() => sendFds(a, [ictx]), { code: 'ERR_VFIO_CLOSED' });
  assert.throws(() => receiveFds(b, { timeoutMs: 20 }), { code: 'ETIMEDOUT' }, 'nothing was sent');
});

test('a worker blocked in receiveFds() with no timeout ends promptly when terminated', async () => {
  const { Worker } = await import('node:worker_threads');
  const [c, d] = socketPair();
  const w = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const { receiveFds } = require(workerData.lib);
    parentPort.postMessage('waiting');
    receiveFds(workerData.fd);`, { eval: true, workerData: { fd: d, lib: new URL('../../dist/index.js', import.meta.url).pathname } });
  await new Promise((resolve) => w.once('message', resolve));
  await new Promise((resolve) => setTimeout(resolve, 100));
  const t0 = Date.now();
  await w.terminate();
  assert.ok(Date.now() - t0 < 2000, `terminate took ${Date.now() - t0} ms`);
  fs.closeSync(c);
  fs.closeSync(d);
});
