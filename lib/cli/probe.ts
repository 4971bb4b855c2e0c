// vfio probe <device>: check the kernel's VFIO cdev behaviour on a device, step by step.
import type * as DeviceModule from '../device';
import type * as DmaBufferModule from '../dma-buffer';
import type { DmaBuffer } from '../dma-buffer';
import { VfioError } from '../errors';
import type * as IommufdModule from '../iommufd';
import { cdevPathFor } from '../sysfs';
import { describeTarget, explain, hex, oneDevice, type Command } from './common';

interface Step {
  step: string;
  result: string;
  expected: string;
  ok: boolean;
  /** Why it failed and what to do, for well-known causes. */
  hint?: string;
}

function run(positionals: string[], options: Record<string, boolean>): number {
  const target = oneDevice(positionals, 'probe');
  describeTarget(target);
  const name = 'bdf' in target ? target.bdf : target.uuid;
  const cdev = cdevPathFor(name);
  const json = options.json === true;
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

  // Loaded here, not at the top: `vfio list` and the usage start without the addon's modules.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { Iommufd } = require('../iommufd') as typeof IommufdModule;
  const { VfioDevice } = require('../device') as typeof DeviceModule;
  const { DmaBuffer: Buffers } = require('../dma-buffer') as typeof DmaBufferModule;
  /* eslint-enable @typescript-eslint/no-require-imports */
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
      buf = Buffers.alloc(4096);
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

export const probe: Command = {
  name: 'probe',
  args: '<device>',
  summary: "check the kernel's VFIO cdev behaviour on a device, step by step",
  options: { json: 'print the steps as JSON' },
  run,
};
