#!/usr/bin/env node
// npm run bench: build the C programs with the machine's compiler, then run bench/bench.mjs in the
// lab and keep its JSON in bench/out/ (latest.json and a dated copy) for later comparison.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EDU } from '../examples/build/edu.js';
import * as nvmeSpec from '../dist/nvme/spec.js';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, 'out');
fs.mkdirSync(out, { recursive: true });
const cxx = process.env.CXX || 'c++';
// Register maps come from their one home (examples/edu.ts, lib/nvme/spec.ts) as -D flags; the
// ioctls and structs from native/uapi.h.
const eduFlags = Object.entries(EDU).map(([k, v]) => `-DEDU_${k}=${v}`);
const nvmeFlags = Object.entries(nvmeSpec).filter(([group]) => /^[A-Z_]+$/.test(group)).flatMap(([group, v]) => {
  if (typeof v === 'number') return [`-DNVME_${group}=${v}`];
  if (typeof v === 'object' && v !== null) return Object.entries(v).map(([k, n]) => `-DNVME_${group}_${k}=${n}`);
  return [];
});
// vfio-bench twice: the program, and the same loops as a library the bench loads into its own
// process (the "C in this process" column).
for (const [name, source, flags] of [['vfio-bench', 'vfio-bench', eduFlags], ['nvme-bench', 'nvme-bench', nvmeFlags],
  ['vfio-bench.so', 'vfio-bench', [...eduFlags, '-DVFIO_BENCH_LIB', '-shared', '-fPIC']]]) {
  const build = spawnSync(cxx, ['-std=c++17', '-O2', '-Wall', '-Wextra', '-Wno-missing-field-initializers', ...flags,
    '-o', path.join(out, name), path.join(here, `${source}.cc`)], { stdio: 'inherit' });
  if (build.status !== 0) {
    console.error(`bench: building bench/${source}.cc (${name}) with ${cxx} failed`);
    process.exit(1);
  }
}

// The V8 fast API call evaluation (fast-call.cc) needs v8-fast-api-calls.h for exactly this V8,
// found where the addon's own fast-call module finds it (scripts/v8-fast-calls.js).
const require = createRequire(import.meta.url);
const { fastCallsInclude, HEADER } = require('../scripts/v8-fast-calls.js');
function fastCallIncludes() {
  const nodeInclude = [path.join(path.dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node']
    .find((d) => fs.existsSync(path.join(d, 'node.h')));
  if (!nodeInclude) return { problem: "Node's headers (node.h) were not found" };
  const v8 = fastCallsInclude();
  return v8.dir ? { dirs: [nodeInclude, v8.dir] } : { problem: v8.why };
}
fs.rmSync(path.join(out, 'fast-call.node'), { force: true });
fs.rmSync(path.join(out, 'fast-call.skipped'), { force: true });
const fastCall = fastCallIncludes();
if (fastCall.dirs) {
  const build = spawnSync(cxx, ['-std=c++17', '-O2', '-Wall', '-Wextra', '-shared', '-fPIC', ...fastCall.dirs.flatMap((d) => ['-isystem', d]),
    '-DNODE_GYP_MODULE_NAME=fast_call', '-o', path.join(out, 'fast-call.node'), path.join(here, 'fast-call.cc')], { stdio: 'inherit' });
  if (build.status !== 0) {
    console.error(`bench: building bench/fast-call.cc with ${cxx} failed`);
    process.exit(1);
  }
  console.log(`bench: fast-call.node built against ${fastCall.dirs[1]}/${HEADER}`);
} else {
  fs.writeFileSync(path.join(out, 'fast-call.skipped'), `${fastCall.problem}\n`);
  console.log(`bench: the V8 fast API call rows will not be measured: ${fastCall.problem}`);
}
const results = fs.mkdtempSync(path.join(out, 'run-'));
const lab = spawnSync(process.execPath, [path.join(here, '..', 'lab', 'run.mjs'), '--timeout', '600', '--out', results, 'sh', '-c',
  // Both sides on vCPU 0, and the device interrupts routed there too: waking an idle emulated
  // CPU costs far more than the work measured, and which CPU gets an MSI would otherwise vary.
  `echo 1 > /proc/irq/default_smp_affinity && exec taskset -c 0 node ${path.join(here, 'bench.mjs')}`], { stdio: 'inherit' });
const json = path.join(results, 'bench.json');
if (lab.status === 0 && fs.existsSync(json)) {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  fs.copyFileSync(json, path.join(out, 'latest.json'));
  fs.copyFileSync(json, path.join(out, `bench-${stamp}.json`));
  console.log(`bench: results written to bench/out/latest.json and bench/out/bench-${stamp}.json`);
}
fs.rmSync(results, { recursive: true, force: true });
process.exit(lab.status ?? 1);
