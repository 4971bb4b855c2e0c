// The lab's devices, once: what QEMU is given for each, how the guest recognises it, and what the
// guest does with it. Read by run.mjs (QEMU arguments), guest.mjs (binding, mdev creation, the
// manifest), the runner's tests and the kernel tests (test/kernel/lab.mjs).

/**
 * @typedef {object} LabDevice
 * @property {'edu' | 'nvme' | 'nvme-sriov' | 'mtty'} kind   the manifest's `kind`
 * @property {number} count                   how many the guest has
 * @property {string} [pciId]                 vendor:device as sysfs shows it (PCI devices)
 * @property {(sysDir: string) => boolean} [match]  tells apart kinds that share a pciId
 * @property {string} [mdevParent]            the mdev parent to create it on (mdevs), as createMdev() takes it
 * @property {string} [mdevType]              and its mdev type
 * @property {(ctx: { nvmeImage: () => string }) => string[]} qemu   QEMU arguments
 * @property {string} does                    what the guest does with it
 */

import fs from 'node:fs';

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
    match: (dir) => !fs.existsSync(`${dir}/sriov_totalvfs`),
    does: 'taken from the nvme driver and bound to vfio-pci (16 MiB image in the cache dir)',
  },
  {
    kind: 'nvme-sriov',
    count: 1,
    pciId: '0x1b36:0x0010',
    // An SR-IOV physical function with 2 VFs (QEMU's nvme wants a subsystem and flexible queue
    // and interrupt resources for them), no namespace; the kernel's vfio-pci takes enable_sriov=1
    // (run.mjs) so its VFs can be created while it is on vfio-pci.
    qemu: () => [
      '-device', 'nvme-subsys,id=labsubsys',
      '-device', 'pcie-root-port,id=rp1,chassis=2,slot=2',
      '-device', 'nvme,serial=vfiolab-sriov,subsys=labsubsys,bus=rp1,sriov_max_vfs=2,sriov_vq_flexible=4,sriov_vi_flexible=2',
    ],
    match: (dir) => fs.existsSync(`${dir}/sriov_totalvfs`),
    does: 'an SR-IOV PF (2 VFs) bound to vfio-pci; the tests create and remove its VFs',
  },
  {
    kind: 'mtty',
    count: 1,
    mdevParent: 'mtty',
    mdevType: 'mtty-2',
    qemu: () => [],
    does: 'created as an mdev of the kernel\'s mtty sample driver',
  },
];

/** How many devices the manifest lists. */
export const LAB_DEVICE_COUNT = LAB_DEVICES.reduce((n, d) => n + d.count, 0);

/** The catalogue entry of a PCI vendor:device id as sysfs shows it, or undefined. */
export function byPciId(id, sysDir) {
  return LAB_DEVICES.find((d) => d.pciId === id && (!d.match || d.match(sysDir)));
}
