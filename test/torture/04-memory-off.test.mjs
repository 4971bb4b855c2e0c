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

test('optimized writes (V8 fast calls) refuse while the memory is off, in the owner and in a worker, and land again after', async () => {
  assertSurvived(await runCase(`${setup('edu')}
    const { createRequire } = await import('node:module');
    const { fastCalls } = createRequire(import.meta.url)(${JSON.stringify(new URL('../../dist/native.js', import.meta.url).pathname)});
    assert.ok(fastCalls().active, fastCalls().why);
    const { Worker } = await import('node:worker_threads');
    const w = new Worker(\`
      const { parentPort, workerData } = require('node:worker_threads');
      const { MappedRegion } = require('vfio');
      const bar = MappedRegion.fromShared(workerData);
      const ring = (v) => bar.write32(4, v);
      for (let i = 0; i < 20000; i++) ring(i);
      parentPort.on('message', (m) => {
        if (m === 'stop') { bar.close(); parentPort.close(); return; }
        try { ring(m); parentPort.postMessage('wrote'); } catch (e) { parentPort.postMessage(e.code); }
      });
      parentPort.postMessage('ready');\`, { eval: true, execArgv: [], workerData: bar.share() });
    const next = () => new Promise((r) => w.once('message', r));
    assert.equal(await next(), 'ready');
    const ring = (v) => bar.write32(4, v);
    for (let i = 0; i < 20000; i++) ring(i);
    const cmd = dev.config.command;
    dev.config.write16(4, cmd & ~2);
    assert.throws(() => ring(1), off);
    w.postMessage(1);
    assert.equal(await next(), 'EIO', 'the shared mapping in the worker refuses with EIO');
    dev.config.write16(4, cmd | 2);
    ring(0x1234);
    assert.equal(bar.read32(4), ~0x1234 >>> 0);
    w.postMessage(0x5678);
    assert.equal(await next(), 'wrote');
    assert.equal(bar.read32(4), ~0x5678 >>> 0);
    w.postMessage('stop');
    await new Promise((r) => w.once('exit', r));
    dev.close(); iommufd.close();`));
});
