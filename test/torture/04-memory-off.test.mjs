// When the library itself turns a device's memory off (COMMAND.MEMORY cleared, D3hot through the
// PM capability, low-power entry), its BAR mappings refuse access with a typed error instead of
// letting the process die of SIGBUS, and work again after the matching re-enable. Each case runs
// in a child process, so a SIGBUS would be counted, not fatal.
import { test } from 'node:test';
import { assertSurvived, runCase } from './child.mjs';

const setup = (kind) => `
  const info = ${kind};
  const iommufd = vfio.Iommufd.open();
  const dev = vfio.VfioDevice.open(info.cdevPath);
  dev.bind(iommufd);
  const bar = dev.region(0).map();
  const first = bar.read32(0);
  const off = { code: 'ERR_VFIO_MEMORY_OFF', name: 'VfioStateError' };`;

test('clearing COMMAND.MEMORY through config.write16 suspends the BAR mapping until it is set again', async () => {
  assertSurvived(await runCase(`${setup('edu')}
    const cmd = dev.config.command;
    dev.config.write16(4, cmd & ~2);
    assert.match(dev.memoryOff, /COMMAND\\.MEMORY/);
    for (const f of ['read8', 'read16', 'read32', 'read64']) assert.throws(() => bar[f](0), off);
    assert.throws(() => bar.write32(4, 1), off);
    assert.throws(() => bar.readInto(0, new Uint32Array(4)), off);
    const late = dev.region(0).map();
    assert.throws(() => late.read32(0), off, 'a mapping made while memory is off starts suspended');
    dev.config.write16(4, cmd | 2);
    assert.equal(dev.memoryOff, null);
    assert.equal(bar.read32(0), first);
    assert.equal(late.read32(0), first);
    dev.close(); iommufd.close();`));
});

test('every config write form that clears COMMAND.MEMORY is caught: write8, write32, region.write', async () => {
  assertSurvived(await runCase(`${setup('edu')}
    const cfg = dev.region(7);
    const cmd = dev.config.command;
    cfg.write8(4, cmd & 0xfd);
    assert.throws(() => bar.read32(0), off);
    cfg.write8(4, cmd & 0xff);
    assert.equal(bar.read32(0), first);
    const dword = cfg.read32(4);
    cfg.write32(4, (dword & ~2) >>> 0);
    assert.throws(() => bar.read32(0), off);
    cfg.write32(4, (dword | 2) >>> 0);
    assert.equal(bar.read32(0), first);
    cfg.write(4, Uint8Array.of(cmd & 0xfd));
    assert.throws(() => bar.read32(0), off);
    cfg.write(4, Uint8Array.of(cmd & 0xff));
    assert.equal(bar.read32(0), first);
    dev.close(); iommufd.close();`));
});

test('low-power entry through feature() suspends the mappings; LOW_POWER_EXIT brings them back', async () => {
  assertSurvived(await runCase(`${setup('edu')}
    const { constants: C } = vfio;
    dev.feature(C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, { set: true });
    assert.match(dev.memoryOff, /low power/);
    assert.throws(() => bar.read32(0), off);
    dev.feature(C.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, { set: true });
    assert.equal(bar.read32(0), first);
    dev.close(); iommufd.close();`));
});

test('D3hot through the PM capability suspends the mappings; D0 brings them back', async () => {
  assertSurvived(await runCase(`${setup('nvme')}
    const pm = dev.config.capabilities().find((c) => c.id === 1);
    assert.ok(pm, 'the lab nvme has a PM capability');
    const pmcsr = dev.config.read16(pm.offset + 4);
    dev.config.write16(pm.offset + 4, (pmcsr & ~3) | 3);
    assert.match(dev.memoryOff, /D3hot/);
    assert.throws(() => bar.read32(0), off);
    dev.config.write16(pm.offset + 4, pmcsr & ~3);
    assert.equal(dev.memoryOff, null);
    assert.equal(bar.read32(0), first);
    dev.close(); iommufd.close();`));
});

test('two reasons at once: memory comes back only when both are undone', async () => {
  assertSurvived(await runCase(`${setup('edu')}
    const { constants: C } = vfio;
    const cmd = dev.config.command;
    dev.config.write16(4, cmd & ~2);
    dev.feature(C.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, { set: true });
    dev.feature(C.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, { set: true });
    assert.throws(() => bar.read32(0), off);
    dev.config.write16(4, cmd | 2);
    assert.equal(bar.read32(0), first);
    dev.close(); iommufd.close();`));
});
