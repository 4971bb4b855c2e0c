#!/usr/bin/env node
// The `vfio` command: list, inspect, bind/unbind and probe VFIO devices.
import { VfioDevice, type DeviceInfo, type IrqInfo, type RegionInfo } from './device';
import { DmaBuffer } from './dma-buffer';
import { VfioError } from './errors';
import { Iommufd } from './iommufd';
import {
  bindToVfioPci, cdevPathFor, isMdevUuid, listPciDevices, mdevDevice, normalizeBdf, unbindFromVfioPci,
  type MdevDeviceInfo, type PciDeviceInfo,
} from './sysfs';

const USAGE = `usage: vfio <command> [options]

commands:
  list [--json]              every PCI device, its driver, IOMMU group and VFIO cdev
  info <device> [--json]     a device's driver, group, cdev, regions and IRQs (binds to a fresh iommufd)
  bind <bdf> [--force]       bind a device to vfio-pci (--force: even if another driver has it)
  unbind <bdf>               unbind a device from vfio-pci and give it back to its own driver
  probe <device> [--json]    check the kernel's VFIO cdev behaviour on a device, step by step

<bdf> is a PCI address such as 0000:00:05.0 (or 00:05.0); <device> is a PCI address or an mdev UUID.`;

/** A usage error: print the usage, exit 2. */
class UsageError extends Error {}

const REGION_NAMES = ['BAR0', 'BAR1', 'BAR2', 'BAR3', 'BAR4', 'BAR5', 'ROM', 'CONFIG', 'VGA'];
const IRQ_NAMES = ['INTx', 'MSI', 'MSI-X', 'ERR', 'REQ'];

function hex(n: number | bigint, width = 0): string {
  return `0x${n.toString(16).padStart(width, '0')}`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

function parse(args: string[], flags: string[]): { positional: string[]; flags: Set<string> } {
  const positional: string[] = [];
  const set = new Set<string>();
  for (const a of args) {
    if (a.startsWith('--')) {
      if (!flags.includes(a)) throw new UsageError(`unknown option ${a}`);
      set.add(a);
    } else {
      positional.push(a);
    }
  }
  return { positional, flags: set };
}

function oneBdf(positional: string[], command: string): string {
  if (positional.length !== 1) throw new UsageError(`${command} takes exactly one <bdf>`);
  try {
    return normalizeBdf(positional[0]!);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A PCI address, or an mdev UUID where the command takes one (info, probe). */
function oneDevice(positional: string[], command: string): { bdf: string } | { uuid: string } {
  if (positional.length === 1 && isMdevUuid(positional[0]!)) {
    const uuid = positional[0]!.trim().toLowerCase();
    return { uuid };
  }
  return { bdf: oneBdf(positional, command) };
}

/** The sysfs description of a device given by oneDevice, or a one-line error. */
function describeTarget(target: { bdf: string } | { uuid: string }): PciDeviceInfo | MdevDeviceInfo {
  if ('bdf' in target) return findDevice(target.bdf);
  const m = mdevDevice(target.uuid);
  if (!m) throw new CliError(`no mdev device ${target.uuid} (see ls /sys/bus/mdev/devices)`);
  return m;
}

function deviceRow(d: PciDeviceInfo): string[] {
  return [
    d.bdf,
    `${d.vendorId.toString(16).padStart(4, '0')}:${d.deviceId.toString(16).padStart(4, '0')}`,
    d.classCode.toString(16).padStart(6, '0'),
    d.driver ?? '-',
    d.iommuGroup === null ? '-' : String(d.iommuGroup),
    d.cdevPath ?? '-',
  ];
}

function list(args: string[]): number {
  const { positional, flags } = parse(args, ['--json']);
  if (positional.length) throw new UsageError('list takes no arguments');
  const devices = listPciDevices();
  if (flags.has('--json')) {
    console.log(JSON.stringify(devices, null, 2));
  } else if (devices.length === 0) {
    console.log('no PCI devices (is /sys mounted?)');
  } else {
    console.log(table([['BDF', 'ID', 'CLASS', 'DRIVER', 'GROUP', 'CDEV'], ...devices.map(deviceRow)]));
  }
  return 0;
}

function findDevice(bdf: string): PciDeviceInfo {
  const d = listPciDevices().find((p) => p.bdf === bdf);
  if (!d) throw new CliError(`no PCI device ${bdf}; 'vfio list' shows the devices there are`);
  return d;
}

/** A failure with a one-line message that names the cause and the fix: exit 1. */
class CliError extends Error {}

type InfoJson = (PciDeviceInfo | MdevDeviceInfo) & {
  flags: number;
  canReset: boolean;
  numRegions: number;
  numIrqs: number;
  regions: Array<Omit<RegionInfo, 'offset'> & { name: string; offset: string }>;
  irqs: Array<IrqInfo & { name: string }>;
};

function info(args: string[]): number {
  const { positional, flags } = parse(args, ['--json']);
  const target = oneDevice(positional, 'info');
  const desc = describeTarget(target);
  const cdev = cdevPathFor('bdf' in target ? target.bdf : target.uuid);
  const iommufd = Iommufd.open();
  const dev = VfioDevice.open(cdev);
  let devInfo: DeviceInfo;
  const regions: InfoJson['regions'] = [];
  const irqs: InfoJson['irqs'] = [];
  try {
    dev.bind(iommufd);
    devInfo = dev.info();
    for (let i = 0; i < devInfo.numRegions; i++) {
      let r: RegionInfo;
      try {
        r = dev.regionInfo(i);
      } catch (err) {
        if (err instanceof VfioError && err.code === 'EINVAL') continue; // absent (e.g. no VGA)
        throw err;
      }
      regions.push({ ...r, name: REGION_NAMES[i] ?? `region${i}`, offset: hex(r.offset) });
    }
    for (let i = 0; i < devInfo.numIrqs; i++) {
      try {
        irqs.push({ ...dev.irqInfo(i), name: IRQ_NAMES[i] ?? `irq${i}` });
      } catch (err) {
        if (err instanceof VfioError && err.code === 'EINVAL') continue; // e.g. ERR on a non-PCIe device
        throw err;
      }
    }
  } finally {
    dev.close();
    iommufd.close();
  }
  const out: InfoJson = {
    ...desc,
    flags: devInfo.flags,
    canReset: devInfo.canReset,
    numRegions: devInfo.numRegions,
    numIrqs: devInfo.numIrqs,
    regions,
    irqs,
  };
  if (flags.has('--json')) {
    console.log(JSON.stringify(out, null, 2));
    return 0;
  }
  if ('bdf' in desc) {
    console.log(`${desc.bdf}  ${deviceRow(desc)[1]}  class ${deviceRow(desc)[2]}`);
  } else {
    console.log(`${desc.uuid}  mdev ${desc.type ?? '-'}`);
  }
  console.log(`  driver ${desc.driver}, IOMMU group ${desc.iommuGroup ?? '-'}, cdev ${cdev}`);
  console.log(`  flags ${hex(out.flags)} (${devInfo.isPci ? 'pci' : 'non-pci'}${devInfo.canReset ? ', reset' : ''}), ${out.numRegions} regions, ${out.numIrqs} IRQ indexes`);
  console.log('\nregions:');
  const present = regions.filter((r) => r.size > 0);
  console.log(table([
    ['  INDEX', 'NAME', 'SIZE', 'OFFSET', 'FLAGS'],
    ...present.map((r) => [
      `  ${r.index}`, r.name, String(r.size), r.offset,
      [r.readable && 'read', r.writable && 'write', r.mmappable && 'mmap', r.sparseAreas && 'sparse', r.msixMappable && 'msix-mappable']
        .filter(Boolean).join(','),
    ]),
  ]));
  const empty = regions.filter((r) => r.size === 0).map((r) => r.name);
  if (empty.length) console.log(`  (empty: ${empty.join(', ')})`);
  console.log('\nIRQs:');
  console.log(table([
    ['  INDEX', 'NAME', 'COUNT', 'FLAGS'],
    ...irqs.map((q) => [
      `  ${q.index}`, q.name, String(q.count),
      [q.eventfd && 'eventfd', q.maskable && 'maskable', q.automasked && 'automasked', q.noresize && 'noresize'].filter(Boolean).join(','),
    ]),
  ]));
  return 0;
}

function bind(args: string[]): number {
  const { positional, flags } = parse(args, ['--force']);
  const bdf = oneBdf(positional, 'bind');
  findDevice(bdf);
  const cdev = bindToVfioPci(bdf, { force: flags.has('--force') });
  console.log(`${bdf}: bound to vfio-pci${cdev ? `, cdev ${cdev}` : ' (no cdev: the kernel lacks CONFIG_VFIO_DEVICE_CDEV)'}`);
  return 0;
}

function unbind(args: string[]): number {
  const { positional } = parse(args, []);
  const bdf = oneBdf(positional, 'unbind');
  findDevice(bdf);
  const driver = unbindFromVfioPci(bdf);
  console.log(`${bdf}: unbound from vfio-pci${driver ? `, now bound to ${driver}` : ', no driver'}`);
  return 0;
}

interface Step {
  step: string;
  result: string;
  expected: string;
  ok: boolean;
  /** Why it failed and what to do, for well-known causes. */
  hint?: string;
}

function probe(args: string[]): number {
  const { positional, flags } = parse(args, ['--json']);
  const target = oneDevice(positional, 'probe');
  describeTarget(target);
  const name = 'bdf' in target ? target.bdf : target.uuid;
  const cdev = cdevPathFor(name);
  const json = flags.has('--json');
  const steps: Step[] = [];
  let lastError: VfioError | null = null;
  const record = (step: string, result: string, expected: string): void => {
    const s: Step = { step, result, expected, ok: result === expected || (expected === 'ok' && result.startsWith('ok')) };
    if (!s.ok && lastError && lastError.code === result) s.hint = explain(lastError);
    steps.push(s);
    if (!json) {
      const mark = s.ok ? 'ok  ' : 'FAIL';
      console.log(`${mark} ${step.padEnd(34)} ${result}${s.ok ? '' : `   (expected ${expected})`}`);
      if (s.hint) console.log(`     ${s.hint}`);
    }
  };
  const attempt = (fn: () => string): string => {
    lastError = null;
    try {
      return fn();
    } catch (err) {
      if (err instanceof VfioError) {
        lastError = err;
        return err.code;
      }
      throw err;
    }
  };

  const iommufd = Iommufd.open();
  const dev = VfioDevice.open(cdev);
  let buf: DmaBuffer | null = null;
  try {
    record(`open ${cdev}`, `ok, state ${dev.state}`, 'ok');
    const blocked = dev.probeBlocked();
    record('GET_INFO before bind', blocked.ioctl, 'EINVAL');
    record('pread before bind', blocked.read, 'EINVAL');
    record('pwrite before bind', blocked.write, 'EINVAL');
    record('mmap before bind', blocked.mmap, 'EINVAL');
    const bound = attempt(() => `ok, devid ${dev.bind(iommufd)}`);
    record('VFIO_DEVICE_BIND_IOMMUFD', bound, 'ok');
    if (bound.startsWith('ok')) {
      const raw = VfioDevice.fromFd(dev.fd, { bound: true, checks: false });
      record('second BIND on the same fd', attempt(() => `ok, devid ${raw.bind(iommufd)}`), 'EINVAL');
      raw.close(); // does not own the fd
      record('GET_INFO after bind', attempt(() => {
        const i = dev.info();
        return `ok, ${i.numRegions} regions, ${i.numIrqs} IRQ indexes`;
      }), 'ok');
      const ioas = iommufd.allocIoas();
      record('IOMMU_IOAS_ALLOC', `ok, ioas ${ioas.id}`, 'ok');
      record('VFIO_DEVICE_ATTACH_IOMMUFD_PT', attempt(() => `ok, page table ${dev.attach(ioas)}`), 'ok');
      buf = DmaBuffer.alloc(4096);
      const b = buf;
      record('IOMMU_IOAS_MAP 4 KiB', attempt(() => {
        const iova = ioas.map(b);
        ioas.unmap(iova, b.size);
        return `ok, iova ${hex(iova)}`;
      }), 'ok');
      record('VFIO_DEVICE_DETACH_IOMMUFD_PT', attempt(() => {
        dev.detach();
        return 'ok';
      }), 'ok');
    }
  } finally {
    dev.close();
    iommufd.close();
    buf?.free();
  }
  const ok = steps.every((s) => s.ok);
  if (json) {
    console.log(JSON.stringify({ ...target, cdevPath: cdev, ok, steps }, null, 2));
  } else {
    console.log(ok ? 'the kernel behaved as documented' : 'the kernel did NOT behave as documented');
  }
  const failed = steps.find((s) => !s.ok);
  if (failed) process.stderr.write(`vfio: probe failed at ${failed.step}: ${failed.hint ?? failed.result}\n`);
  return ok ? 0 : 1;
}

/** One line for stderr: a VfioError's message already names the cause and the fix. */
function explain(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Run the CLI with `argv` (without node and the script); returns the exit code. */
export function main(argv: string[]): number {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'list':
        return list(rest);
      case 'info':
        return info(rest);
      case 'bind':
        return bind(rest);
      case 'unbind':
        return unbind(rest);
      case 'probe':
        return probe(rest);
      case '-h':
      case '--help':
      case 'help':
        console.log(USAGE);
        return 0;
      case undefined:
        throw new UsageError('no command given');
      default:
        throw new UsageError(`unknown command '${command}'`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`vfio: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    process.stderr.write(`vfio: ${explain(err)}\n`);
    return 1;
  }
}

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2));
}
