// Runs the kernel test suite (test/kernel/*.test.mjs) inside the lab guest, one file at a time
// (the devices are shared), and prints the guest kernel and the pass/fail counts.
import fs from 'node:fs';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import { fileURLToPath } from 'node:url';

const testDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// The kernel suite, the kernel's own VFIO selftests ported (test/kernel/upstream/), the torture
// suite, and the tests compiled by tsc from test/types/.
const dirs = [path.join(testDir, 'kernel'), path.join(testDir, 'kernel', 'upstream'), path.join(testDir, 'torture'),
  path.join(testDir, 'types', 'build')];
const only = process.argv.slice(2);
const files = only.length
  ? only.map((f) => path.resolve(f))
  : dirs.flatMap((dir) => (fs.existsSync(dir) ? fs.readdirSync(dir) : [])
    .filter((f) => f.endsWith('.test.mjs') || f.endsWith('.test.js'))
    .sort()
    .map((f) => path.join(dir, f)));

if (!process.env.VFIO_LAB_MANIFEST) {
  console.error('suite: VFIO_LAB_MANIFEST is not set: run the kernel tests in the lab (npm test, or npm run lab -- --suite)');
  process.exit(1);
}

let passed = 0;
let failed = 0;
const upstream = { passed: 0, failed: 0, notExpressible: new Set(), needsMock: new Set(), notPorted: new Set() };
const isUpstream = (e) => !!e.file && e.file.includes(`${path.sep}upstream${path.sep}`);
// One test file's limit: a hang fails the file, not the run. The longest file (the port of
// iommufd.c on 7.3) takes ~95 s alone; a loaded machine (a cold CI run builds kernels beside it)
// took 10-cli past 120 s once, so the margin is wide.
const stream = run({ files, concurrency: 1, timeout: 300_000 });
// Seconds per file (its top-level tests' durations): the run prints the slowest, for the CI budget.
const fileSeconds = new Map();
const timeFile = (e) => {
  if (e.nesting === 0 && e.file) fileSeconds.set(e.file, (fileSeconds.get(e.file) ?? 0) + (e.details?.duration_ms ?? 0) / 1000);
};
stream.on('test:fail', timeFile);
stream.on('test:pass', timeFile);
stream.on('test:pass', (e) => {
  if (e.details?.type !== 'suite' && e.nesting >= 0 && !e.skip && !e.todo && e.file) {
    passed++;
    if (isUpstream(e)) upstream.passed++;
  }
});
stream.on('test:fail', (e) => {
  if (e.details?.type !== 'suite') {
    failed++;
    if (isUpstream(e)) upstream.failed++;
  }
});
// A ported upstream case the API cannot express, or that needs the mock IOMMU this kernel lacks,
// says so on stdout (modes.mjs notExpressible, needsMock); the needs-mock lines are counted, not listed.
stream.on('test:stdout', (e) => {
  for (const line of String(e.message).split('\n')) {
    if (line.startsWith('upstream: not expressible: ')) upstream.notExpressible.add(line);
    if (line.startsWith('upstream: not ported: ')) upstream.notPorted.add(line);
    if (line.startsWith('upstream: needs the mock IOMMU: ')) upstream.needsMock.add(line);
  }
});
const report = stream.compose(spec);
report.pipe(process.stdout);
await finished(report);
const kernel = fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
console.log(`lab: guest kernel ${kernel}, ${files.length} test files`);
for (const line of [...upstream.notExpressible, ...upstream.notPorted]) console.log(`lab: ${line}`);
console.log(`lab: upstream selftests: ${upstream.passed} passed, ${upstream.failed} failed, ` +
  `${upstream.notExpressible.size} not expressible, ${upstream.needsMock.size} need the kernel's mock IOMMU (not in this kernel), ` +
  `${upstream.notPorted.size} not ported (files, fixtures or cases)`);
const slowest = [...fileSeconds].sort((a, b) => b[1] - a[1]).slice(0, 6);
console.log(`lab: slowest files: ${slowest.map(([f, sec]) => `${path.relative(testDir, f)} ${sec.toFixed(0)} s`).join(', ')}`);
console.log(`lab: ${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
