#!/usr/bin/env node
// npm test's kernel part: the kernel suite (test/kernel/ and test/torture/) in the lab on every
// lab kernel (lab/host.mjs KERNELS), the kernels side by side (each guest is its own QEMU with its
// own disk; VFIO_LAB_SEQUENTIAL=1 runs them one after the other), each run to the end; then each
// kernel's pass/fail count. Each line is prefixed with its kernel (grep '^\[6.12\]' for one).
// Fails if any run fails or cannot start.
//   node test/lab/suites.mjs [FILE...]
import { spawn } from 'node:child_process';
import path from 'node:path';
import { KERNELS, LAB_DIR } from '../../lab/host.mjs';

/** Run the suite on `series`; resolves with its summary once the guest is done. */
function runSuite(series) {
  process.stdout.write(`lab: kernel suite on ${series}\n`);
  const child = spawn(process.execPath, [path.join(LAB_DIR, 'run.mjs'), '--kernel', series, '--suite', ...process.argv.slice(2)],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let partial = '';
  const onData = (d) => {
    out += d;
    const lines = (partial + d).split('\n');
    partial = lines.pop();
    for (const line of lines) process.stdout.write(`[${series}] ${line}\n`);
  };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return new Promise((resolve) => child.on('close', (code, signal) => {
    if (partial) process.stdout.write(`[${series}] ${partial}\n`);
    const status = code ?? 128 + (signal ? 1 : 0);
    const kernel = /lab: guest kernel (\S+?),/.exec(out)?.[1] ?? series;
    const counts = /lab: (\d+) passed, (\d+) failed/.exec(out);
    const upstream = /lab: (upstream selftests: .*)/.exec(out)?.[1] ?? 'upstream selftests: no counts';
    resolve({ series, kernel, status, upstream, passed: counts ? Number(counts[1]) : 0, failed: counts ? Number(counts[2]) : null });
  }));
}

const series = Object.keys(KERNELS);
const results = [];
if (process.env.VFIO_LAB_SEQUENTIAL === '1') {
  for (const s of series) results.push(await runSuite(s));
} else {
  results.push(...await Promise.all(series.map(runSuite)));
}
process.stdout.write('\n');
for (const r of results) {
  const counts = r.failed === null ? 'did not report counts' : `${r.passed} passed, ${r.failed} failed`;
  process.stdout.write(`lab: kernel ${r.kernel}: ${counts}${r.status ? ` (exit status ${r.status})` : ''}; ${r.upstream}\n`);
}
process.exitCode = results.every((r) => r.status === 0 && r.failed === 0 && r.passed > 0) ? 0 : 1;
