// The two processes of upstream's TEST_F(change_process, basic), run by iommufd.test.mjs under
// `setpriv --bounding-set=-ipc_lock` (upstream drops CAP_IPC_LOCK: with it the kernel charges no
// pinned memory at all). Upstream forks; Node cannot, so the second process is a new node that
// gets the iommufd as its fd 3. Exits 0 when every check held, else prints the failure and exits 1.
//
//   node change-process-child.mjs <account_none|account_user|account_mm>
//   node change-process-child.mjs --take <parent pid> <variant>      (the "child" of upstream's fork)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DmaBuffer, Iommufd } from 'vfio';
import { mockDevice } from '../mock-iommu.mjs';

const PAGE_SIZE = 4096;
const nlock = PAGE_SIZE / 1024; // kB, as /proc/<pid>/status counts

function status(pid, tag) {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${tag}:`));
  return line ? Number(line.split(/\s+/)[1]) : -1;
}
const pinned = (pid) => status(pid, 'VmPin');
const locked = (pid) => status(pid, 'VmLck');

function take(parent, variant) {
  const iommufd = Iommufd.fromFd(3, { own: false });
  assert.equal(pinned(parent), nlock, 'the parent is charged before');
  if (variant === 'account_mm') assert.equal(locked(parent), nlock);
  assert.equal(pinned(process.pid), 0);
  assert.equal(locked(process.pid), 0);
  iommufd.changeProcess();
  assert.equal(pinned(parent), 0, 'the parent is no longer charged');
  assert.equal(locked(parent), 0);
  assert.equal(pinned(process.pid), nlock, 'this process is');
  if (variant === 'account_mm') assert.equal(locked(process.pid), nlock);
}

function basic(variant) {
  const capEff = BigInt(`0x${fs.readFileSync('/proc/self/status', 'utf8').match(/^CapEff:\s+(\w+)/m)[1]}`);
  assert.equal((capEff >> 14n) & 1n, 0n, 'CAP_IPC_LOCK (14) is dropped, as upstream\'s drop_cap_ipc_lock does');
  const iommufd = Iommufd.open();
  if (variant !== 'account_none') iommufd.setOption('rlimitMode', variant === 'account_mm');
  const ioas = iommufd.allocIoas();
  mockDevice(iommufd, ioas);
  const anon = DmaBuffer.alloc(PAGE_SIZE);
  const file = DmaBuffer.alloc(PAGE_SIZE, { memfd: true });

  const iova = ioas.map(anon, { length: PAGE_SIZE });
  assert.throws(() => iommufd.changeProcess(), { name: 'VfioError', code: 'EINVAL' }, 'non-file maps exist');
  ioas.unmap(iova, PAGE_SIZE);

  ioas.mapFile(file.fd, { start: 0, length: PAGE_SIZE });
  iommufd.changeProcess(); // works in the current process

  const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--take', String(process.pid), variant],
    { stdio: ['ignore', 'inherit', 'inherit', iommufd.fd], env: process.env });
  assert.equal(child.status, 0, 'the other process took the charge over');
  iommufd.close();
}

try {
  if (process.argv[2] === '--take') take(Number(process.argv[3]), process.argv[4]);
  else basic(process.argv[2]);
} catch (err) {
  console.error(err);
  process.exit(1);
}
