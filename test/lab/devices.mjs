// The lab's devices, once: what QEMU is given for each, how the guest recognises it, and what the
// guest does with it. Read by run.mjs (QEMU arguments), guest.mjs (binding, mdev creation, the
// manifest), the runner's tests and the kernel tests (test/kernel/lab.mjs).

/**
 * @typedef {object} LabDevice
 * @property {'edu' | 'nvme' | 'mtty'} kind   the manifest's `kind`
 * @property {number} count                   how many the guest has
 * @property {string} [pciId]                 vendor:device as sysfs shows it (PCI devices)
 * @property {string} [mdevType]              the mdev type directory to create it in (mdevs)
 * @property {(ctx: { nvmeImage: () => string }) => string[]} qemu   QEMU arguments
 * @property {string} does                    what the guest does with it
 */

/** @type {LabDevice[]} */
export const LAB_DEVICES = [
  {
    kind: 'edu',
    count: 2,
    pciId: '0x1234:0x11e8',
    qemu: () => ['-device', 'edu', '-device', 'edu'],
    does: 'bound to vfio-pci',
  },
  {
    kind: 'nvme',
    count: 1,
    pciId: '0x1b36:0x0010',
    // Behind a PCIe root port, so it has a bus the kernel can reset (hot reset). At 5 GT/s: for
    // faster ports the kernel waits for Data Link Layer Link Active after a bus reset, which
    // QEMU's root port does not report, and the reset fails with ENOTTY.
    qemu: ({ nvmeImage }) => [
      '-drive', `file=${nvmeImage()},if=none,id=nvm,format=raw,file.locking=off`,
      '-device', 'pcie-root-port,id=rp0,chassis=1,slot=1,x-speed=5,x-width=1',
      '-device', 'nvme,drive=nvm,serial=vfiolab,bus=rp0',
    ],
    does: 'taken from the nvme driver and bound to vfio-pci (16 MiB image in the cache dir)',
  },
  {
    kind: 'mtty',
    count: 1,
    mdevType: '/sys/devices/virtual/mtty/mtty/mdev_supported_types/mtty-2',
    qemu: () => [],
    does: 'created as an mdev of the kernel\'s mtty sample driver',
  },
];

/** How many devices the manifest lists. */
export const LAB_DEVICE_COUNT = LAB_DEVICES.reduce((n, d) => n + d.count, 0);

/** The catalogue entry of a PCI vendor:device id as sysfs shows it, or undefined. */
export function byPciId(id) {
  return LAB_DEVICES.find((d) => d.pciId === id);
}
