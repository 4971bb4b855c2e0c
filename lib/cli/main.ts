// The `vfio` command: its command table, and the usage and per-command help generated from it.
// Options are accepted before or after the command (`vfio --json list` = `vfio list --json`).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { bind } from './bind';
import { CliError, explain, UsageError, type Command } from './common';
import { info } from './info';
import { isLab, lab } from './lab';
import { list } from './list';
import { nvme } from './nvme';
import { probe } from './probe';
import { unbind } from './unbind';

/** Every command, in the order the usage lists them. */
export const COMMANDS: readonly Command[] = [list, info, bind, unbind, probe, nvme, lab];

const GLOBAL = { help: 'show help (vfio <command> --help: that command\'s)', version: 'print the version' };

/** `name args [--opt]...`; with `full`, the valued options too (else `[options]` stands for them). */
function signature(c: Command, full = false): string {
  const valued = Object.entries(c.values ?? {});
  const shown = full ? valued.map(([o, v]) => `[--${o} ${v.default}]`) : valued.length ? ['[options]'] : [];
  return [c.name, c.args, ...shown, ...Object.keys(c.options).map((o) => `[--${o}]`)].filter(Boolean).join(' ');
}

/** The usage, generated from the command table. */
export function usage(): string {
  const rows = COMMANDS.map((c) => [signature(c), c.summary]);
  const width = Math.max(...rows.map((r) => r[0].length));
  return [
    'usage: vfio <command> [options]',
    '',
    'commands:',
    ...rows.map(([sig, summary]) => `  ${sig.padEnd(width)}  ${summary}`),
    '',
    'options: --help, --version; each command\'s own (vfio <command> --help)',
    '<bdf> is a PCI address such as 0000:00:03.0 (or 00:03.0); <device> is a PCI address or an mdev UUID.',
  ].join('\n');
}

/** `vfio <command> --help`. */
export function commandHelp(c: Command): string {
  const valued = Object.entries(c.values ?? {}).map(([o, v]) => [`${o} ${v.default}`, `${v.description} (default ${v.default})`]);
  const opts = [...valued, ...Object.entries({ ...c.options, help: 'show this help' })];
  const width = Math.max(...opts.map(([o]) => o.length + 2));
  return [
    `usage: vfio ${signature(c, true)}`,
    '',
    c.summary,
    '',
    'options:',
    ...opts.map(([o, d]) => `  ${`--${o}`.padEnd(width)}  ${d}`),
  ].join('\n');
}

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function fail(err: unknown): number {
  if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`vfio: ${(err as Error).message}\n${usage()}\n`);
    return 2;
  }
  process.stderr.write(`vfio: ${err instanceof CliError ? err.message : explain(err)}\n`);
  return 1;
}

/** Run the CLI with `argv` (without node and the script); returns the exit code (or a promise of it). */
export function main(argv: string[]): number | Promise<number> {
  try {
    if (isLab(argv)) return lab.run(argv.slice(1), {}, {});
    const booleans = new Set([...Object.keys(GLOBAL), ...COMMANDS.flatMap((c) => Object.keys(c.options))]);
    const valued = new Set(COMMANDS.flatMap((c) => Object.keys(c.values ?? {})));
    const unknown = argv.find((a) => a.startsWith('--') && !booleans.has(a.slice(2)) && !valued.has(a.slice(2)));
    if (unknown) throw new UsageError(`unknown option ${unknown}`);
    const spec: Record<string, { type: 'boolean' | 'string' }> = {};
    for (const o of booleans) spec[o] = { type: 'boolean' };
    for (const o of valued) spec[o] = { type: 'string' };
    const parsed = parseArgs({ args: argv, options: spec, allowPositionals: true, strict: true });
    const positionals = parsed.positionals;
    const options: Record<string, boolean> = {};
    const values: Record<string, string> = {};
    for (const [k, v] of Object.entries(parsed.values)) {
      if (typeof v === 'string') values[k] = v;
      else if (v === true) options[k] = true;
    }
    if (options.version) {
      console.log(version());
      return 0;
    }
    const [name, ...rest] = positionals;
    if (name === 'help') {
      const c = COMMANDS.find((x) => x.name === rest[0]);
      console.log(c ? commandHelp(c) : usage());
      return 0;
    }
    if (name === undefined) {
      if (options.help) {
        console.log(usage());
        return 0;
      }
      throw new UsageError('no command given');
    }
    const command = COMMANDS.find((c) => c.name === name);
    if (!command) throw new UsageError(`unknown command '${name}'`);
    if (options.help) {
      console.log(commandHelp(command));
      return 0;
    }
    const stray = [...Object.keys(options), ...Object.keys(values)]
      .find((o) => !(o in command.options) && !(o in (command.values ?? {})));
    if (stray) throw new UsageError(`${name} has no option --${stray}`);
    for (const [k, v] of Object.entries(command.values ?? {})) values[k] ??= v.default;
    const code = command.run(rest, options, values);
    return typeof code === 'number' ? code : code.catch(fail);
  } catch (err) {
    return fail(err);
  }
}
