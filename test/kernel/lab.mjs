// What the lab guest provides: the device manifest written by lab/guest.mjs.
import fs from 'node:fs';
import { Iommufd, VfioDevice } from 'vfio';

const file = process.env.VFIO_LAB_MANIFEST;
if (!file) {
  throw new Error('VFIO_LAB_MANIFEST is not set: the kernel tests run inside the lab (npm test, or npm run lab -- --suite)');
}

/** @type {{ kernel: string, iommufd: string | null, devices: Array<{ kind: string, id: string, bdf: string | null, cdevPath: string | null, iommuGroup: number, groupPath: string, sysfsPath: string }> }} */
export const manifest = JSON.parse(fs.readFileSync(file, 'utf8'));

/** Every device of a kind ('edu', 'nvme', 'mtty'). */
export function devicesOf(kind) {
  const list = manifest.devices.filter((d) => d.kind === kind);
  if (list.length === 0) throw new Error(`the lab manifest has no ${kind} device`);
  return list;
}

/**
 * Every device with a VFIO cdev: all but the noiommu edu before Linux 7.3 (16-noiommu asserts
 * that it has none there).
 */
export function cdevDevices() {
  return manifest.devices.filter((d) => d.cdevPath !== null);
}

/** The first device of a kind. */
export function deviceOf(kind) {
  return devicesOf(kind)[0];
}

/**
 * Open device `n` of `kind`, bind it to a fresh iommufd and (unless `attach: false`) attach it to
 * a fresh IOAS. `close()` releases all of it and is idempotent.
 */
export function openBound(kind, { n = 0, attach = true } = {}) {
  const info = devicesOf(kind)[n];
  const iommufd = Iommufd.open();
  let dev;
  let ioas = null;
  try {
    dev = VfioDevice.open(info.cdevPath);
    dev.bind(iommufd);
    if (attach) {
      ioas = iommufd.allocIoas();
      dev.attach(ioas);
    }
  } catch (err) {
    dev?.close();
    iommufd.close();
    throw err;
  }
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    dev.close();
    try {
      if (ioas && !ioas.destroyed) {
        ioas.unmapAll();
        ioas.destroy();
      }
    } finally {
      iommufd.close();
    }
  };
  return { info, iommufd, dev, ioas, close };
}

/** Run `fn(resource)` and then `close(resource)`, whatever `fn` does (sync or async). */
export function withResource(resource, close, fn) {
  let result;
  try {
    result = fn(resource);
  } catch (err) {
    close(resource);
    throw err;
  }
  if (result && typeof result.then === 'function') return result.finally(() => close(resource));
  close(resource);
  return result;
}

/**
 * Run `fn({ info, iommufd, dev, ioas })` on a device opened by openBound and close it all
 * afterwards, whatever `fn` does (sync or async).
 */
export function withBound(kind, fn, options) {
  return withResource(openBound(kind, options), (ctx) => ctx.close(), fn);
}

/**
 * Give device nodes another mode (and group, with `gid`) for `fn` — what a udev rule would —
 * then restore their owner, group and mode, whatever `fn` does.
 */
export function withNodeAccess(nodes, { mode, gid }, fn) {
  const saved = nodes.map((n) => fs.statSync(n));
  nodes.forEach((n) => {
    if (gid !== undefined) fs.chownSync(n, 0, gid);
    fs.chmodSync(n, mode);
  });
  try {
    return fn();
  } finally {
    nodes.forEach((n, i) => {
      fs.chownSync(n, saved[i].uid, saved[i].gid);
      fs.chmodSync(n, saved[i].mode & 0o7777);
    });
  }
}
