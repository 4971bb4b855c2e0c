// The vfio command's argument handling, on the host (the commands themselves run in the lab).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { COMMANDS, usage } from '../../dist/cli/main.js';

const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const vfio = (...args) => spawnSync(CLI, args, { encoding: 'utf8' });
const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));

test('vfio --version prints the package version', () => {
  const r = vfio('--version');
  assert.equal(r.status, 0);
  assert.equal(r.stdout.trim(), pkg.version);
});

test('the usage lists every command of the table with its options', () => {
  const text = usage();
  for (const c of COMMANDS) {
    assert.match(text, new RegExp(`^  ${c.name}\\b.*${c.summary.replace(/[()]/g, '.')}`, 'm'));
    for (const o of Object.keys(c.options)) assert.match(text, new RegExp(`${c.name}[^\\n]*\\[--${o}\\]`));
  }
});

test('vfio <command> --help and vfio help <command> print that command\'s help', () => {
  for (const c of COMMANDS) {
    for (const r of [vfio(c.name, '--help'), vfio('help', c.name)]) {
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^usage: vfio ${c.name}`));
    }
  }
});

test('options are accepted before or after the command', () => {
  const a = vfio('--json', 'list');
  const b = vfio('list', '--json');
  assert.equal(a.status, 0, a.stderr);
  assert.deepEqual(JSON.parse(a.stdout), JSON.parse(b.stdout));
});

test('an option the command does not take is a usage error', () => {
  const r = vfio('list', '--force');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /list has no option --force/);
  assert.match(r.stderr, /usage: vfio <command>/);
});
