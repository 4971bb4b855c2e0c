#!/usr/bin/env node
// npm test's kernel part: the kernel suite (test/kernel/ and test/torture/) in the lab on every
// lab kernel (lab/host.mjs KERNELS), one after the other, each run to the end; then each kernel's
// pass/fail count. Fails if any run fails or cannot start.
//   node test/lab/suites.mjs [FILE...]
import { spawn } from 'node:child_process';
import path from 'node:path';
import { KERNELS, LAB_DIR } from '../../lab/host.mjs';

const results = [];
for (const series of Object.keys(KERNELS)) {
  process.stdout.write(`\nlab: kernel suite on ${series}\n`);
  const child = spawn(process.execPath, [path.join(LAB_DIR, 'run.mjs'), '--kernel', series, '--suite', ...process.argv.slice(2)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    out += d;
    process.stdout.write(d);
  });
  const status = await new Promise((resolve) => child.on('close', (code, signal) => resolve(code ?? 128 + (signal ? 1 : 0))));
  const kernel = /lab: guest kernel (\S+?),/.exec(out)?.[1] ?? series;
  const counts = /lab: (\d+) passed, (\d+) failed/.exec(out);
  const upstream = /lab: (upstream selftests: .*)/.exec(out)?.[1] ?? 'upstream selftests: no counts';
  results.push({ series, kernel, status, upstream, passed: counts ? Number(counts[1]) : 0, failed: counts ? Number(counts[2]) : null });
}
process.stdout.write('\n');
for (const r of results) {
  const counts = r.failed === null ? 'did not report counts' : `${r.passed} passed, ${r.failed} failed`;
  process.stdout.write(`lab: kernel ${r.kernel}: ${counts}${r.status ? ` (exit status ${r.status})` : ''}; ${r.upstream}\n`);
}
process.exitCode = results.every((r) => r.status === 0 && r.failed === 0 && r.passed > 0) ? 0 : 1;
