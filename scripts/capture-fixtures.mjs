// Captures the raw bytes the lab kernel returns for the info ioctls, as fixtures for the
// decoders' unit tests (test/unit/fixtures/). Run in the lab:
//   npm run build && npm run lab -- --out test/unit/fixtures node scripts/capture-fixtures.mjs
import fs from 'node:fs';
import path from 'node:path';
import { Iommufd, VfioDevice } from 'vfio';
import { hot, native } from '../dist/native.js';

const manifest = JSON.parse(fs.readFileSync(process.env.VFIO_LAB_MANIFEST, 'utf8'));
const hex = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString('hex');
const out = { kernel: manifest.kernel, devices: {} };
for (const kind of ['edu', 'nvme', 'mtty']) {
  const d = manifest.devices.find((x) => x.kind === kind);
  const iommufd = Iommufd.open();
  const dev = VfioDevice.open(d.cdevPath);
  try {
    dev.bind(iommufd);
    const h = dev._handle('ioctl');
    const info = native.deviceGetInfo(h);
    native.deviceGetInfoInto(h);
    const words = new Uint32Array(native.results.slice(0, 24));
    const regions = {};
    for (let i = 0; i < words[2]; i++) {
      try {
        regions[i] = hex(native.deviceGetRegionInfo(h, i));
      } catch {
        // not every index exists on every device
      }
    }
    const irqs = {};
    for (let i = 0; i < words[3]; i++) {
      try {
        irqs[i] = hot.irqInfo(h, i);
      } catch (err) {
        irqs[i] = { error: err.code };
      }
    }
    let hotReset = null;
    try {
      hotReset = hex(native.deviceHotResetInfo(h));
    } catch (err) {
      hotReset = { error: err.code };
    }
    out.devices[kind] = { info: hex(info), infoWords: Array.from(words), regions, irqs, hotReset, bdf: d.bdf };
  } finally {
    dev.close();
    iommufd.close();
  }
}
fs.writeFileSync(path.join(process.env.VFIO_LAB_OUT, `lab-${manifest.kernel}.json`), `${JSON.stringify(out, null, 2)}\n`);
console.log('captured', Object.keys(out.devices).join(', '));
