// Compiled by tsc (test/types/tsconfig.json) and run in the lab: the package's .d.ts types a
// real program, and `using` releases every resource at the end of its scope.
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  DmaBuffer, Iommufd, VfioDevice, VfioError, VfioStateError,
  type DeviceState, type IovaRange, type RegionInfo, type VfioStateCode,
} from 'vfio';

interface LabDevice {
  kind: string;
  cdevPath: string;
}
const manifestPath = process.env.VFIO_LAB_MANIFEST;
if (!manifestPath) throw new Error('run in the lab: VFIO_LAB_MANIFEST is not set');
const devices = (JSON.parse(readFileSync(manifestPath, 'utf8')) as { devices: LabDevice[] }).devices;
const edu = devices.find((d) => d.kind === 'edu');
if (!edu) throw new Error('no edu device in the lab manifest');

test('using releases the iommufd, the device, the IOAS, the buffer and the mapping', () => {
  const fdsBefore = readdirSync('/proc/self/fd').length;
  const seen: { dev?: VfioDevice; iommufd?: Iommufd; buf?: DmaBuffer } = {};
  {
    using iommufd = Iommufd.open();
    using buf = DmaBuffer.alloc(4096);
    using ioas = iommufd.allocIoas();
    using dev = VfioDevice.open(edu.cdevPath);
    const before: DeviceState = dev.state;
    assert.equal(before, 'blocked');
    dev.bind(iommufd);
    dev.attach(ioas);
    const iova: bigint = ioas.map(buf, { iova: 0x100000n });
    const ranges: IovaRange[] = ioas.iovaRanges();
    const bar0: RegionInfo = dev.regionInfo(0);
    using bar = dev.region(0).map();
    assert.equal(bar.read32(0x04 /* liveness */) >>> 0, bar.read32(0x04) >>> 0);
    assert.equal(iova, 0x100000n);
    assert.ok(ranges.length > 0 && bar0.mmappable);
    seen.dev = dev;
    seen.iommufd = iommufd;
    seen.buf = buf;
  }
  assert.equal(seen.dev?.state, 'closed');
  assert.equal(seen.iommufd?.closed, true);
  assert.equal(seen.buf?.freed, true);
  assert.equal(readdirSync('/proc/self/fd').length, fdsBefore);
});

test('errors are typed: VfioStateError is a VfioError with a narrow code', () => {
  using dev = VfioDevice.open(edu.cdevPath);
  try {
    dev.info();
    assert.fail('info() before bind must throw');
  } catch (err) {
    if (!(err instanceof VfioStateError)) throw err;
    const e: VfioError = err;
    const code: VfioStateCode = err.code;
    assert.equal(code, 'ERR_VFIO_NOT_BOUND');
    assert.equal(e.errno, -22);
  }
});
