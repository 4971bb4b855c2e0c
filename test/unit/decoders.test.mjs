// The byte decoders on what the lab kernel (6.12) answered, captured by
// scripts/capture-fixtures.mjs into test/unit/fixtures/.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import {
  decodeDeviceInfo, decodeHotResetInfo, decodeIrqInfo, decodeRegionInfo, decodeRegionInfoWords, parseCaps,
} from '../../dist/decoders.js';

const lab = JSON.parse(fs.readFileSync(new URL('./fixtures/lab-6.12.117.json', import.meta.url), 'utf8'));
const bytes = (hex) => Uint8Array.from(Buffer.from(hex, 'hex'));

test('device info: edu is a PCI device without reset, nvme one with reset, 9 regions and 5 IRQ indexes', () => {
  const edu = decodeDeviceInfo(Uint32Array.from(lab.devices.edu.infoWords));
  assert.deepEqual(edu, { flags: 2, numRegions: 9, numIrqs: 5, canReset: false, isPci: true, caps: [] });
  const nvme = decodeDeviceInfo(Uint32Array.from(lab.devices.nvme.infoWords));
  assert.equal(nvme.canReset, true);
});

test('region info: edu BAR0 is 1 MiB, readable, writable, mmappable, at offset 0', () => {
  const r = decodeRegionInfo(bytes(lab.devices.edu.regions[0]), 0);
  assert.equal(r.size, 1 << 20);
  assert.equal(r.offset, 0n);
  assert.deepEqual([r.readable, r.writable, r.mmappable], [true, true, true]);
  assert.equal(r.sparseAreas, undefined);
});

test('region info: config space is region 7 at 7 << 40, not mmappable', () => {
  const r = decodeRegionInfo(bytes(lab.devices.edu.regions[7]), 7);
  assert.equal(r.offset, 7n << 40n);
  assert.equal(r.size, 256);
  assert.equal(r.mmappable, false);
});

test('region info from words (the fast path) decodes every capability-free region as the byte decoder does', () => {
  let checked = 0;
  for (const dev of Object.values(lab.devices)) {
    for (const [index, hex] of Object.entries(dev.regions ?? {})) {
      const raw = bytes(hex);
      if (new DataView(raw.buffer).getUint32(4, true) & 8) continue; // has capabilities
      const words = new Uint32Array(raw.buffer.slice(0, 32));
      assert.deepEqual(decodeRegionInfoWords(words, Number(index)), decodeRegionInfo(raw, Number(index)));
      checked++;
    }
  }
  assert.ok(checked >= 4, `only ${checked} regions checked`);
  const high = new Uint32Array([32, 7, 0, 0, 0x1000, 0, 0x10, 0xffffffff]);
  assert.equal(decodeRegionInfoWords(high, 0).offset, (0xffffffffn << 32n) | 0x10n, 'offsets past 2^53 stay exact');
});

test('region info: the nvme BAR0 capability chain says the MSI-X table may be mmapped', () => {
  const raw = bytes(lab.devices.nvme.regions[0]);
  const r = decodeRegionInfo(raw, 0);
  assert.equal(r.msixMappable, true);
  assert.deepEqual(parseCaps(raw, 32).map((c) => c.id), [3]);
});

test('capability chains that loop or run past the buffer end stop instead of hanging', () => {
  const raw = new Uint8Array(32);
  const v = new DataView(raw.buffer);
  v.setUint16(8, 1, true);
  v.setUint32(12, 8, true); // next points at itself
  assert.equal(parseCaps(raw, 8).length, 1);
  v.setUint32(12, 1000, true);
  assert.equal(parseCaps(raw, 8).length, 1);
  assert.deepEqual(parseCaps(raw, 0), []);
});

test('irq info: INTx is maskable and automasked, MSI-X on the nvme has 65 vectors and can grow', () => {
  const [flags, count] = lab.devices.edu.irqs[0];
  assert.deepEqual(decodeIrqInfo(0, flags, count), { index: 0, count: 1, eventfd: true, maskable: true, automasked: true, noresize: false });
  const [f2, c2] = lab.devices.nvme.irqs[2];
  const msix = decodeIrqInfo(2, f2, c2);
  assert.equal(msix.count, 65);
  assert.equal(msix.noresize, false, 'this kernel allocates MSI-X vectors dynamically');
});

test('hot-reset info: the nvme resets alone, by devid, and this iommufd owns it', () => {
  const info = decodeHotResetInfo(bytes(lab.devices.nvme.hotReset));
  assert.equal(info.owned, true);
  assert.deepEqual(info.devices, [{ bdf: lab.devices.nvme.bdf, devId: 1, groupId: null }]);
});
