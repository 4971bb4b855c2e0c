// Runs one torture case in a child process, so that a crash (a signal, an abort, a hang) is
// counted as a failure of that case instead of taking the whole suite down.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { manifest } from '../kernel/lab.mjs';

/**
 * Run `body` (an ES module body; `vfio` unless `loadVfio` is false, `assert`, `manifest`, `edu`,
 * `nvme` and `sleep` are in scope) with --expose-gc. Resolves to { status, signal, stdout, stderr, ms, timedOut }.
 */
export function runCase(body, { timeoutMs = 60_000, args = [], prelude = true, loadVfio = true } = {}) {
  const head = prelude
    ? `import assert from 'node:assert/strict';
       ${loadVfio ? "import * as vfio from 'vfio';" : ''}
       import fs from 'node:fs';
       const manifest = ${JSON.stringify(manifest)};
       const edu = manifest.devices.find((d) => d.kind === 'edu');
       const nvme = manifest.devices.find((d) => d.kind === 'nvme');
       const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
       const fdCount = () => fs.readdirSync('/proc/self/fd').length;
       const status = (key) => Number(/\\d+/.exec(fs.readFileSync('/proc/self/status', 'utf8').split('\\n').find((l) => l.startsWith(key + ':')))[0]);
       const settle = async () => { for (let i = 0; i < 6; i++) { globalThis.gc(); await sleep(20); } };`
    : '';
  const script = `${head}\n${body}\nconsole.log('survived');`;
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', ...args, '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, ms: Date.now() - started, timedOut });
    });
  });
}

/** The case ran to its end: no signal, exit 0, and its last line printed. */
export function assertSurvived(r) {
  assert.equal(r.timedOut, false, `the case hung (killed after ${r.ms} ms): ${r.stderr}`);
  assert.equal(r.signal, null, `the case died of ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, `the case failed:\n${r.stderr}`);
  assert.match(r.stdout, /survived/);
}
