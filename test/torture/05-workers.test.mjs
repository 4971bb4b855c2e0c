// A worker may load the addon alone (the main thread never loads it), create any kind of resource,
// and end normally, by terminate(), or by process.exit() in the main thread: no crash, no hang,
// no leaked fd. Teardown never runs code of the unloaded addon.
import { test } from 'node:test';
import { assertSurvived, runCase } from './child.mjs';


/** What the worker creates and leaves open, per resource kind. */
const KINDS = {
  iommufd: `keep.push(vfio.Iommufd.open());`,
  dmaBuffer: `const b = vfio.DmaBuffer.alloc(1 << 20); b.bytes.fill(1); keep.push(b, b.bytes);`,
  ioasMapping: `const i = vfio.Iommufd.open(); const s = i.allocIoas(); const b = vfio.DmaBuffer.alloc(8192);
    s.map(b); keep.push(i, s, b);`,
  device: `const i = vfio.Iommufd.open(); const d = vfio.VfioDevice.open(workerData.cdevPath); d.bind(i);
    d.attach(i.allocIoas()); keep.push(i, d);`,
  barMapping: `const i = vfio.Iommufd.open(); const d = vfio.VfioDevice.open(workerData.cdevPath); d.bind(i);
    const bar = d.region(0).map(); bar.read32(0); keep.push(i, d, bar);`,
  interrupts: `const i = vfio.Iommufd.open(); const d = vfio.VfioDevice.open(workerData.cdevPath); d.bind(i);
    const irqs = d.enableIrq('msi'); irqs.on('interrupt', () => {}); irqs.unref(); irqs.trigger(0); keep.push(i, d, irqs);`,
  faultQueue: `const i = vfio.Iommufd.open(); const q = i.allocFaultQueue(); q.on('fault', () => {}); q.unref(); keep.push(i, q);`,
  memfdBuffer: `const i = vfio.Iommufd.open(); const b = vfio.DmaBuffer.alloc(8192, { memfd: true }); b.bytes.fill(1);
    i.allocIoas().map(b); keep.push(i, b, b.bytes);`,
  // A vIOMMU's mmapped region through the iommufd (the mock IOMMU, 7.3); 6.12 has no mock: an
  // aligned DmaBuffer mapped instead.
  iommufdMmap: `const i = vfio.Iommufd.open(); const ioas = i.allocIoas(); keep.push(i);
    const cmd = new Uint32Array(18); cmd.set([72, 2, ioas.id]);
    let mock = true;
    try { i.ioctl((0x3b << 8) | (0x80 + 32), new Uint8Array(cmd.buffer)); } catch (e) { if (e.code !== 'ENOTTY') throw e; mock = false; }
    if (mock) {
      const data = new DataView(new ArrayBuffer(24));
      i.allocViommu(cmd[6], i.allocHwpt(cmd[6], ioas, { nestParent: true }), 0xdeadbeef, { data });
      const r = i.mmap(data.getBigUint64(8, true), Number(data.getBigUint64(16, true))); r.read32(0); keep.push(r);
    } else {
      const b = vfio.DmaBuffer.alloc(8192, { align: 2 << 20 }); ioas.map(b); keep.push(b);
    }`,
};

function workerSource(kind) {
  return `
    const vfio = require('vfio');
    const { parentPort, workerData } = require('node:worker_threads');
    const keep = [];
    ${KINDS[kind]}
    globalThis.keep = keep;
    parentPort.postMessage('ready');`;
}

function caseBody(kind, ending) {
  return `
    import { Worker } from 'node:worker_threads';
    const before = fdCount();
    const w = new Worker(${JSON.stringify(workerSource(kind))}, { eval: true, execArgv: [], workerData: { cdevPath: edu.cdevPath } });
    const exited = new Promise((r) => w.once('exit', r));
    w.on('error', (e) => { console.error('worker error', e); process.exit(3); });
    await new Promise((r) => w.once('message', r));
    ${ending === 'exit' ? "console.log('survived'); process.exit(0);" : ''}
    ${ending === 'terminate' ? 'await w.terminate();' : ''}
    await exited;
    await sleep(50);
    assert.equal(fdCount(), before, 'the worker left no fd open');
    assert.equal(Object.keys(globalThis).includes('vfio'), false);`;
}

for (const kind of Object.keys(KINDS)) {
  for (const ending of ['normal', 'terminate', 'exit']) {
    test(`a worker that alone loaded the addon and holds ${kind} ends (${ending}) cleanly`, async () => {
      const r = await runCase(caseBody(kind, ending), { timeoutMs: 60_000, loadVfio: false });
      assertSurvived(r);
    });
  }
}

test('in these cases only the worker loads the addon', async () => {
  const r = await runCase(`
    import { Worker } from 'node:worker_threads';
    const loaded = () => fs.readFileSync('/proc/self/maps', 'utf8').includes('vfio.node');
    assert.equal(loaded(), false, 'the main thread has not loaded the addon');
    const w = new Worker(${JSON.stringify(workerSource('interrupts'))}, { eval: true, execArgv: [], workerData: { cdevPath: edu.cdevPath } });
    await new Promise((r) => w.once('message', r));
    assert.equal(loaded(), true, 'the worker loaded it');
    await w.terminate();`, { loadVfio: false });
  assertSurvived(r);
});
