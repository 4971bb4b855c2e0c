// What the CLI's commands share: their table entry's shape, the two error kinds, output helpers
// and device arguments.
import { isMdevUuid, listPciDevices, mdevDevice, normalizeBdf, type MdevDeviceInfo, type PciDeviceInfo } from '../sysfs';

/** One command of the table: usage and `vfio <command> --help` are generated from it. */
export interface Command {
  name: string;
  /** The positional arguments, as shown in the usage (`'<bdf>'`). */
  args: string;
  summary: string;
  /** Boolean options, name (without --) -> description. */
  options: Record<string, string>;
  /** Options that take a value (`--qd 32`), name -> description and default. */
  values?: Record<string, { description: string; default: string }>;
  /** Returns the exit code (a promise of it for commands that wait). */
  run(positionals: string[], options: Record<string, boolean>, values: Record<string, string>): number | Promise<number>;
}

/** A usage error: print the usage, exit 2. */
export class UsageError extends Error {}

/** A failure with a one-line message that names the cause and the fix: exit 1. */
export class CliError extends Error {}

export function hex(n: number | bigint, width = 0): string {
  return `0x${n.toString(16).padStart(width, '0')}`;
}

/** Columns padded to their widest cell; the last column is not padded. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
}

/** The one <bdf> a command takes, normalised. */
export function oneBdf(positional: string[], command: string): string {
  if (positional.length !== 1) throw new UsageError(`${command} takes exactly one <bdf>`);
  try {
    return normalizeBdf(positional[0]);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A PCI address, or an mdev UUID where the command takes one (info, probe). */
export function oneDevice(positional: string[], command: string): { bdf: string } | { uuid: string } {
  if (positional.length === 1 && isMdevUuid(positional[0])) return { uuid: positional[0].trim().toLowerCase() };
  return { bdf: oneBdf(positional, command) };
}

export function findDevice(bdf: string): PciDeviceInfo {
  const d = listPciDevices().find((p) => p.bdf === bdf);
  if (!d) throw new CliError(`no PCI device ${bdf}; 'vfio list' shows the devices there are`);
  return d;
}

/** The sysfs description of a device given by oneDevice, or a one-line error. */
export function describeTarget(target: { bdf: string } | { uuid: string }): PciDeviceInfo | MdevDeviceInfo {
  if ('bdf' in target) return findDevice(target.bdf);
  const m = mdevDevice(target.uuid);
  if (!m) throw new CliError(`no mdev device ${target.uuid} (see ls /sys/bus/mdev/devices)`);
  return m;
}

/** A device's row in `vfio list`. */
export function deviceRow(d: PciDeviceInfo): string[] {
  return [
    d.bdf,
    `${d.vendorId.toString(16).padStart(4, '0')}:${d.deviceId.toString(16).padStart(4, '0')}`,
    d.classCode.toString(16).padStart(6, '0'),
    d.driver ?? '-',
    d.iommuGroup === null ? '-' : `${d.noiommu ? 'noiommu-' : ''}${d.iommuGroup}`,
    d.cdevPath ?? '-',
    d.physfn ? `VF of ${d.physfn}` : d.totalVfs ? `PF, ${d.totalVfs} VFs max` : '',
  ];
}

/** One line for stderr: a VfioError's message already names the cause and the fix. */
export function explain(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
