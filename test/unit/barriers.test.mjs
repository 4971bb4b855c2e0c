// The barriers around BAR accesses, checked in the arm64 build of native/mapping.cc (a cross
// compile: the lab is x86, where ordinary ordering already holds). Needs g++-aarch64-linux-gnu,
// which .ci/run installs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CXX = 'aarch64-linux-gnu-g++';
const OBJDUMP = 'aarch64-linux-gnu-objdump';
const missing = spawnSync(CXX, ['--version']).status !== 0;

/** The disassembly of one function of mapping.cc built for arm64. */
function disassembly() {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-arm64-')), 'mapping.o');
  const napi = createRequire(import.meta.url)('node-addon-api').include_dir;
  const nodeHeaders = path.join(path.dirname(process.execPath), '..', 'include', 'node');
  const cc = spawnSync(CXX, ['-std=c++17', '-O2', '-fPIC', '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS',
    `-I${nodeHeaders}`, `-I${napi}`, '-c', path.join(root, 'native', 'mapping.cc'), '-o', out], { encoding: 'utf8' });
  assert.equal(cc.status, 0, cc.stderr);
  const dis = spawnSync(OBJDUMP, ['-d', '-C', '--no-show-raw-insn', out], { encoding: 'utf8' });
  assert.equal(dis.status, 0, dis.stderr);
  fs.rmSync(path.dirname(out), { recursive: true, force: true });
  return dis.stdout;
}

function body(text, fn) {
  const start = text.indexOf(`${fn}(Napi::CallbackInfo const&)>:`);
  assert.ok(start >= 0, `${fn} is in the object`);
  const end = text.indexOf('\n\n', start);
  return text.slice(start, end).split('\n').map((l) => l.split('\t').slice(1).join(' ').trim()).filter(Boolean);
}

test('arm64: a BAR write is preceded by dmb oshst (Linux writel) and a read followed by dmb oshld',
  { skip: missing && `${CXX} is not installed (apt-get install g++-aarch64-linux-gnu)` }, () => {
    const text = disassembly();
    const write = body(text, 'vfio::(anonymous namespace)::Write<unsigned int>');
    const barrier = write.findIndex((i) => /^dmb\s+oshst/.test(i));
    assert.ok(barrier >= 0, `dmb oshst in Write<u32>:\n${write.join('\n')}`);
    assert.match(write[barrier + 1], /^str\s+w/, 'the 32-bit store follows the barrier at once');
    assert.ok(!write.some((i) => /^dmb\s+ish\b/.test(i)), 'not the inner-shareable dmb ish');
    const read = body(text, 'vfio::(anonymous namespace)::Read<unsigned int>');
    const load = read.findIndex((i) => /^ldr\s+w/.test(i));
    assert.ok(load >= 0 && /^dmb\s+oshld/.test(read[load + 1]), `ldr then dmb oshld in Read<u32>:\n${read.join('\n')}`);
  });
