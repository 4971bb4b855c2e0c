// vfio nvme perf: IOPS, bandwidth and latency of polled I/O through vfio/nvme, in the spirit of
// spdk_nvme_perf: `qd` commands in flight per queue pair, for `time` seconds.
import { performance } from 'node:perf_hooks';
import { DmaBuffer } from '../dma-buffer';
import type { NvmeController, NvmeQueuePair } from '../nvme';
import { UsageError } from './common';

const PATTERNS = ['randread', 'randwrite', 'read', 'write'] as const;
type Pattern = (typeof PATTERNS)[number];

/** The result of a run. */
export interface PerfResult {
  rw: Pattern;
  bs: number;
  qd: number;
  queues: number;
  seconds: number;
  ios: number;
  iops: number;
  mibps: number;
  latencyUs: { p50: number; p99: number; max: number };
}

function positive(values: Record<string, string>, name: string, max: number): number {
  const v = Number(values[name]);
  if (!Number.isInteger(v) || v < 1 || v > max) throw new UsageError(`--${name} must be an integer from 1 to ${max}, got '${values[name]}'`);
  return v;
}

/** Parse and check perf's options against the controller. */
export function perfOptions(values: Record<string, string>): { rw: Pattern; bs: number; qd: number; time: number; queues: number } {
  const rw = values.rw as Pattern;
  if (!PATTERNS.includes(rw)) throw new UsageError(`--rw must be one of ${PATTERNS.join(', ')}, got '${values.rw}'`);
  return { rw, bs: positive(values, 'bs', 1 << 21), qd: positive(values, 'qd', 1023), time: positive(values, 'time', 3600),
    queues: positive(values, 'queues', 64) };
}

/** Run the workload on namespace 1; `progress` is called about once a second with the IOPS so far. */
export async function perf(ctrl: NvmeController, o: ReturnType<typeof perfOptions>,
  progress?: (iops: number, elapsed: number) => void): Promise<PerfResult> {
  const ns = ctrl.namespaces[0];
  if (!ns) throw new Error('the controller has no active namespace');
  if (o.bs % ns.blockSize) throw new UsageError(`--bs must be a multiple of the block size ${ns.blockSize}`);
  const blocks = o.bs / ns.blockSize;
  const span = ns.blockCount / BigInt(blocks);
  const write = o.rw.endsWith('write');
  const random = o.rw.startsWith('rand');
  const qps: NvmeQueuePair[] = [];
  const bufs: DmaBuffer[] = [];
  const lat: number[] = [];
  let ios = 0;
  let next = 0n;
  const state: { failed: Error | null } = { failed: null };
  let running = true;
  const start = performance.now();
  const end = start + o.time * 1000;
  let lastReport = start;
  try {
    for (let q = 0; q < o.queues; q++) {
      qps.push(ctrl.createQueuePair({ size: o.qd + 1, interrupts: false }));
      bufs.push(DmaBuffer.alloc(o.bs * o.qd));
    }
    // The callback form and a polling loop, as spdk_nvme_perf drives its queue pairs: no promise
    // and no event-loop turn per I/O.
    const issue = (qp: NvmeQueuePair, buf: DmaBuffer, offset: number): void => {
      const lba = (random ? BigInt(Math.floor(Math.random() * Number(span))) : next++ % span) * BigInt(blocks);
      const t0 = performance.now();
      const done = (err: Error | null): void => {
        if (err) {
          state.failed ??= err;
          return;
        }
        lat.push((performance.now() - t0) * 1000);
        ios++;
        if (running) issue(qp, buf, offset);
      };
      if (write) qp.write(1, lba, blocks, buf, offset, done);
      else qp.read(1, lba, blocks, buf, offset, done);
    };
    qps.forEach((qp, q) => {
      for (let k = 0; k < o.qd; k++) issue(qp, bufs[q], k * o.bs);
    });
    let now = start;
    while (now < end && !state.failed) {
      for (const qp of qps) qp.poll();
      now = performance.now();
      if (progress && now - lastReport > 1000) {
        lastReport = now;
        progress(ios / ((now - start) / 1000), (now - start) / 1000);
        await new Promise((r) => setImmediate(r)); // a turn for signals and output, once a second
      }
    }
    running = false;
    const drainEnd = performance.now() + 10_000;
    while (qps.some((qp) => qp.outstanding) && performance.now() < drainEnd) for (const qp of qps) qp.poll();
    if (state.failed) throw state.failed;
  } finally {
    for (const qp of qps) qp.close();
    for (const b of bufs) {
      ctrl.release(b);
      b.free();
    }
  }
  const seconds = (performance.now() - start) / 1000;
  lat.sort((a, b) => a - b);
  const pct = (p: number): number => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : 0);
  return {
    rw: o.rw, bs: o.bs, qd: o.qd, queues: o.queues, seconds, ios,
    iops: ios / seconds, mibps: (ios * o.bs) / seconds / (1 << 20),
    latencyUs: { p50: pct(0.5), p99: pct(0.99), max: lat.length ? lat[lat.length - 1] : 0 },
  };
}
