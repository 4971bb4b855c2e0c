// The five IOMMU modes of the kernel's VFIO selftests (tools/testing/selftests/vfio/lib/iommu.c),
// through the library: the legacy container (/dev/vfio/vfio) with type1 or type1v2, iommufd's
// compat container (/dev/iommu) with type1 or type1v2, and iommufd itself via the cdev.
import { Iommufd, VfioContainer, VfioDevice, VfioGroup, constants as C } from 'vfio';

export const IOMMU_MODES = ['vfio_type1_iommu', 'vfio_type1v2_iommu', 'iommufd_compat_type1', 'iommufd_compat_type1v2', 'iommufd'];

const CONTAINERS = {
  vfio_type1_iommu: ['/dev/vfio/vfio', 'VFIO_TYPE1_IOMMU'],
  vfio_type1v2_iommu: ['/dev/vfio/vfio', 'VFIO_TYPE1v2_IOMMU'],
  iommufd_compat_type1: ['/dev/iommu', 'VFIO_TYPE1_IOMMU'],
  iommufd_compat_type1v2: ['/dev/iommu', 'VFIO_TYPE1v2_IOMMU'],
};

/** The mode's map calls, on an IoAddressSpace or a VfioContainer (their DMA calls are the same). */
function dmaCalls(space) {
  return {
    map: (buf, iova, length) => space.map(buf, { iova, ...(length === undefined ? {} : { length }) }),
    unmap: (iova, length) => space.unmap(iova, length),
    unmapAll: () => space.unmapAll(),
    iovaOf: (buf) => space.iovaOf(buf),
    iovaRanges: () => space.iovaRanges(),
  };
}

/**
 * upstream's iommu_init(mode) + vfio_pci_device_init(bdf, iommu): the device `info` (a lab
 * manifest entry) opened in `mode`. Returns the device, the mode's map/unmap calls and close().
 */
export function openInMode(mode, info) {
  if (mode === 'iommufd') {
    const iommufd = Iommufd.open();
    const dev = VfioDevice.open(info.cdevPath);
    dev.bind(iommufd);
    const ioas = iommufd.allocIoas();
    dev.attach(ioas);
    return {
      mode, dev, iommuType: null, ...dmaCalls(ioas),
      close: () => {
        dev.close();
        iommufd.close();
      },
    };
  }
  const [path, type] = CONTAINERS[mode];
  const container = VfioContainer.open(path);
  const group = VfioGroup.open(info.iommuGroup);
  group.setContainer(container);
  container.setIommu(C[type]);
  const dev = group.getDevice(info.bdf);
  return {
    mode, dev, iommuType: type, ...dmaCalls(container),
    close: () => {
      dev.close();
      group.close();
      container.close();
    },
  };
}

/** upstream's iova_allocator: a free IOVA inside the mode's usable ranges, aligned to `size`. */
export function iovaFor(m, size) {
  const align = BigInt(Math.max(size, 4096));
  for (const r of m.iovaRanges()) {
    const start = (r.start + align - 1n) / align * align;
    if (start + BigInt(size) - 1n <= r.last) return start === 0n ? align : start;
  }
  throw new Error(`no IOVA range holds ${size} bytes`);
}

/** Run `fn(m)` on the device opened in `mode`, closing everything afterwards. */
export function withMode(mode, info, fn) {
  const m = openInMode(mode, info);
  try {
    return fn(m);
  } finally {
    m.close();
  }
}

/**
 * A case of the upstream file that the library's API cannot express, said once so that the
 * suite prints it (test/lab/suite.mjs counts these lines per kernel).
 */
export function notExpressible(file, name, why) {
  process.stdout.write(`upstream: not expressible: ${file}: ${name}: ${why}\n`);
}

/**
 * A case that needs the kernel's mock IOMMU (CONFIG_IOMMUFD_TEST), run on a kernel without it
 * (the lab builds it into 7.3 only): counted per kernel by the suite.
 */
export function needsMock(file, name) {
  process.stdout.write(`upstream: needs the mock IOMMU: ${file}: ${name}\n`);
}

/** An upstream file not ported yet, said once so that the suite prints it. */
export function notPorted(file, why) {
  process.stdout.write(`upstream: not ported: ${file}: ${why}\n`);
}
