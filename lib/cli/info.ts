// vfio info <device>: a device's driver, group, cdev, regions and IRQs (binds to a fresh iommufd).
import type { DeviceInfo, IrqInfo, RegionInfo } from '../decoders';
import type * as DeviceModule from '../device';
import { VfioError } from '../errors';
import type * as IommufdModule from '../iommufd';
import { cdevPathFor, type MdevDeviceInfo, type PciDeviceInfo } from '../sysfs';
import { describeTarget, deviceRow, hex, oneDevice, table, type Command } from './common';

const REGION_NAMES = ['BAR0', 'BAR1', 'BAR2', 'BAR3', 'BAR4', 'BAR5', 'ROM', 'CONFIG', 'VGA'];
const IRQ_NAMES = ['INTx', 'MSI', 'MSI-X', 'ERR', 'REQ'];

type InfoJson = (PciDeviceInfo | MdevDeviceInfo) & {
  flags: number;
  canReset: boolean;
  numRegions: number;
  numIrqs: number;
  regions: Array<Omit<RegionInfo, 'offset'> & { name: string; offset: string }>;
  irqs: Array<IrqInfo & { name: string }>;
};

function run(positionals: string[], options: Record<string, boolean>): number {
  const target = oneDevice(positionals, 'info');
  const desc = describeTarget(target);
  const cdev = cdevPathFor('bdf' in target ? target.bdf : target.uuid);
  // Loaded here, not at the top: `vfio list` and the usage start without the addon's modules.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { Iommufd } = require('../iommufd') as typeof IommufdModule;
  const { VfioDevice } = require('../device') as typeof DeviceModule;
  /* eslint-enable @typescript-eslint/no-require-imports */
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
  if (options.json) {
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

export const info: Command = {
  name: 'info',
  args: '<device>',
  summary: "a device's driver, group, cdev, regions and IRQs (binds to a fresh iommufd)",
  options: { json: 'print JSON' },
  run,
};
