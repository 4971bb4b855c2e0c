// tools/testing/selftests/vfio/vfio_pci_device_test.c (Linux 7.3) through the library, on each
// lab PCI device it can use (edu, nvme), in upstream's default IOMMU mode (iommufd).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { constants as C } from 'vfio';
import { deviceOf } from '../lab.mjs';
import { withMode } from './modes.mjs';

const MAX_TEST_MSI = 16;
const PCI_COMMAND_MASTER = 0x4;

for (const info of [deviceOf('edu'), deviceOf('nvme')]) {
  const on = `${info.kind} ${info.bdf}`;
  const sysfsId = (file) => parseInt(fs.readFileSync(`/sys/bus/pci/devices/${info.bdf}/${file}`, 'utf8'), 16);

  test(`vfio_pci_device_test.config_space_read_write (${on})`, () => {
    withMode('iommufd', info, ({ dev }) => {
      assert.equal(dev.config.vendorId, sysfsId('vendor'));
      assert.equal(dev.config.deviceId, sysfsId('device'));
      let command = dev.config.read16(0x04);
      assert.equal(command & PCI_COMMAND_MASTER, 0);
      dev.config.write16(0x04, command | PCI_COMMAND_MASTER);
      command = dev.config.read16(0x04);
      assert.equal(command & PCI_COMMAND_MASTER, PCI_COMMAND_MASTER);
      dev.config.write16(0x04, command & ~PCI_COMMAND_MASTER);
      assert.equal(dev.config.read16(0x04) & PCI_COMMAND_MASTER, 0);
    });
  });

  test(`vfio_pci_device_test.validate_bars (${on})`, () => {
    withMode('iommufd', info, ({ dev }) => {
      let mapped = 0;
      for (let i = 0; i < 6; i++) {
        const r = dev.regionInfo(i);
        if (!r.mmappable) {
          // Upstream: a BAR without mmap is left unmapped; the library refuses to map it.
          if (r.size > 0) assert.throws(() => dev.region(i).map(), { name: 'VfioError' });
          continue;
        }
        assert.notEqual(r.size, 0);
        const bar = dev.region(i).map();
        assert.equal(bar.size, r.size);
        bar.close();
        mapped++;
      }
      assert.ok(mapped > 0, 'the device has an mmappable BAR');
    });
  });

  for (const [variant, index] of [['msi', C.VFIO_PCI_MSI_IRQ_INDEX], ['msix', C.VFIO_PCI_MSIX_IRQ_INDEX]]) {
    test(`vfio_pci_irq_test.${variant}.enable_trigger_disable (${on})`, () => {
      withMode('iommufd', info, ({ dev }) => {
        const count = Math.min(dev.irqInfo(index).count, MAX_TEST_MSI);
        if (count === 0) {
          // Upstream SKIPs ("not supported"); the device says so, and enabling is refused.
          assert.throws(() => dev.enableIrq(index, { count: 1 }), (e) => e instanceof RangeError || e.name === 'VfioError');
          return;
        }
        const irqs = dev.enableIrq(index, { count });
        try {
          for (let i = 0; i < count; i++) {
            assert.equal(irqs.drain(i), 0, `vector ${i} has not fired`);
            irqs.trigger(i);
            assert.equal(irqs.drain(i), 1, `vector ${i} fired once`);
          }
        } finally {
          irqs.disable();
        }
      });
    });
  }

  test(`vfio_pci_device_test.reset (${on})`, () => {
    withMode('iommufd', info, ({ dev }) => {
      if (!dev.info().canReset) {
        // Upstream SKIPs; the library refuses with the kernel's answer.
        assert.throws(() => dev.reset(), { name: 'VfioError' });
        return;
      }
      dev.reset();
    });
  });
}
