// The lab's devices, once: what QEMU is given for each, how the guest recognises it, and what the
// guest does with it. Read by run.mjs (QEMU arguments), guest.mjs (binding, mdev creation, the
// manifest), the runner's tests and the kernel tests (test/kernel/lab.mjs).

/**
 * @typedef {object} LabDevice
 * @property {'edu' | 'edu-noiommu' | 'nvme' | 'nvme-sriov' | 'mtty'} kind   the manifest's `kind`
 * @property {number} count                   how many the guest has
 * @property {string} [pciId]                 vendor:device as sysfs shows it (PCI devices)
 * @property {(sysDir: string) => boolean} [match]  tells apart kinds that share a pciId
 * @property {string} [mdevParent]            the mdev parent to create it on (mdevs), as createMdev() takes it
 * @property {string} [mdevType]              and its mdev type
 * @property {(ctx: { nvmeImage: () => string }) => string[]} qemu   QEMU arguments
 * @property {string[]} [kernelArgs]          what it needs on the guest kernel's command line
 * @property {string} does                    what the guest does with it
 */

import fs from 'node:fs';
import path from 'node:path';

/**
 * The first bus number of the host bridge that bypasses the IOMMU (a pxb-pcie with
 * bypass_iommu=on): devices below it have no IOMMU, the noiommu devices.
 */
const NOIOMMU_BUS = 0x80;

/** Whether a PCI device's sysfs dir is below the IOMMU-bypassing host bridge. */
function behindBypass(sysDir) {
  return parseInt(path.basename(sysDir).split(':')[1], 16) >= NOIOMMU_BUS;
}

/** @type {LabDevice[]} */
export const LAB_DEVICES = [
  {
    kind: 'edu',
    count: 2,
    pciId: '0x1234:0x11e8',
    qemu: () => ['-device', 'edu,bus=pcie.0', '-device', 'edu,bus=pcie.0'],
    match: (dir) => !behindBypass(dir),
    does: 'bound to vfio-pci',
  },
  {
    kind: 'edu-noiommu',
    count: 1,
    pciId: '0x1234:0x11e8',
    // An edu with no IOMMU: behind a host bridge QEMU leaves out of VT-d's DMAR scope, so the
    // guest kernel gives it no IOMMU group and vfio (enable_unsafe_noiommu_mode=1) makes it a
    // noiommu device: /dev/vfio/noiommu-N on the group path, and on 7.3 (IOMMUFD_NOIOMMU) a
    // noiommu-vfioN cdev. Its DMA addresses are physical, so its DMA mask is widened from edu's
    // 28 bits to 64.
    qemu: () => [
      '-device', `pxb-pcie,id=pxb-noiommu,bus_nr=${NOIOMMU_BUS},bypass_iommu=on,bus=pcie.0`,
      '-device', 'pcie-root-port,id=rp-noiommu,bus=pxb-noiommu,chassis=9,slot=9',
      '-device', 'edu,bus=rp-noiommu,dma_mask=0xffffffffffffffff',
    ],
    // (Every device names its bus: QEMU puts one without bus= on the newest bus of its kind, which
    // after this one would be the IOMMU-less pxb's.)
    kernelArgs: ['vfio.enable_unsafe_noiommu_mode=1'],
    match: behindBypass,
    does: 'bound to vfio-pci without an IOMMU (an unsafe noiommu device)',
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
      '-device', 'pcie-root-port,id=rp0,bus=pcie.0,chassis=1,slot=1,x-speed=5,x-width=1',
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
    // (kernelArgs) so its VFs can be created while it is on vfio-pci.
    qemu: () => [
      '-device', 'nvme-subsys,id=labsubsys',
      '-device', 'pcie-root-port,id=rp1,bus=pcie.0,chassis=2,slot=2',
      '-device', 'nvme,serial=vfiolab-sriov,subsys=labsubsys,bus=rp1,sriov_max_vfs=2,sriov_vq_flexible=4,sriov_vi_flexible=2',
    ],
    kernelArgs: ['vfio_pci.enable_sriov=1'],
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
