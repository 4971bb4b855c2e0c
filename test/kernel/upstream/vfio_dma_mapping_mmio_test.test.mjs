// tools/testing/selftests/vfio/vfio_dma_mapping_mmio_test.c (Linux 7.3) through the library, on
// the lab's edu (BAR0: 1 MiB, mmappable, read/write), in all five IOMMU modes: the legacy type1
// containers map a BAR's mmap for peer-to-peer DMA; iommufd's compat container refuses (the
// kernel's errno), and an IOAS is refused by the library before the syscall with the EFAULT the
// kernel would give, pointing at dma-buf (upstream: "Native iommufd will never support this").
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deviceOf } from '../lab.mjs';
import { IOMMU_MODES, iovaFor, notExpressible, withMode } from './modes.mjs';

const FILE = 'vfio_dma_mapping_mmio_test';
const edu = deviceOf('edu');
const PAGE = 4096;

notExpressible(FILE, 'map_bar_misaligned', 'the library chooses where a BAR is mmapped (MappedRegion), so a mapping ' +
  'deliberately misaligned to 1 GiB cannot be asked for');

/** upstream's largest_mapped_bar(): the largest mmappable read/write BAR. */
function largestBar(dev) {
  let best = null;
  for (let i = 0; i < 6; i++) {
    const r = dev.regionInfo(i);
    if (r.mmappable && r.readable && r.writable && r.size > (best?.size ?? 0)) best = r;
  }
  return best;
}

/** upstream's do_mmio_map_test(): map `length` bytes of the BAR's mmap at a free IOVA. */
function mmioMap(m, bar, length) {
  const iova = iovaFor(m, length);
  if (m.mode === 'vfio_type1_iommu' || m.mode === 'vfio_type1v2_iommu') {
    assert.equal(m.map(bar, iova, length), iova);
    assert.equal(m.unmap(iova, length), length);
  } else if (m.mode === 'iommufd') {
    assert.throws(() => m.map(bar, iova, length), { name: 'VfioError', code: 'EFAULT', message: /exportDmabuf/ });
  } else {
    assert.throws(() => m.map(bar, iova, length), { name: 'VfioError' });
  }
}

for (const mode of IOMMU_MODES) {
  test(`vfio_dma_mapping_mmio_test.${mode}.map_full_bar`, () => {
    withMode(mode, edu, (m) => {
      const info = largestBar(m.dev);
      const bar = m.dev.region(info.index).map();
      try {
        mmioMap(m, bar, info.size);
      } finally {
        bar.close();
      }
    });
  });

  test(`vfio_dma_mapping_mmio_test.${mode}.map_partial_bar`, () => {
    withMode(mode, edu, (m) => {
      const info = largestBar(m.dev);
      assert.ok(info.size >= 2 * PAGE, 'edu BAR0 is large enough (upstream SKIPs smaller ones)');
      const bar = m.dev.region(info.index).map();
      try {
        mmioMap(m, bar, PAGE);
      } finally {
        bar.close();
      }
    });
  });
}
