// What the lab guest provides: the device manifest written by test/lab/guest.mjs.
import fs from 'node:fs';

const file = process.env.VFIO_LAB_MANIFEST;
if (!file) {
  throw new Error('VFIO_LAB_MANIFEST is not set: the kernel tests run inside the lab (npm test, or npm run lab -- node test/lab/suite.mjs)');
}

/** @type {{ kernel: string, iommufd: string | null, devices: Array<{ kind: string, id: string, bdf: string | null, cdevPath: string, iommuGroup: number, groupPath: string, sysfsPath: string }> }} */
export const manifest = JSON.parse(fs.readFileSync(file, 'utf8'));

/** Every device of a kind ('edu', 'nvme', 'mtty'). */
export function devicesOf(kind) {
  const list = manifest.devices.filter((d) => d.kind === kind);
  if (list.length === 0) throw new Error(`the lab manifest has no ${kind} device`);
  return list;
}

/** The first device of a kind. */
export function deviceOf(kind) {
  return devicesOf(kind)[0];
}
