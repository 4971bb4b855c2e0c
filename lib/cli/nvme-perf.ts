// vfio nvme perf: IOPS, bandwidth and latency of polled I/O through vfio/nvme, in the spirit of
// spdk_nvme_perf: `qd` commands in flight per queue pair, for `time` seconds.
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
  const start = process.hrtime.bigint();
  const end = start + BigInt(o.time) * 1_000_000_000n;
  let lastReport = start;
  try {
    for (let q = 0; q < o.queues; q++) {
      qps.push(ctrl.createQueuePair({ size: o.qd + 1, interrupts: false }));
      bufs.push(DmaBuffer.alloc(o.bs * o.qd));
    }
    const slot = async (qp: NvmeQueuePair, buf: DmaBuffer, offset: number): Promise<void> => {
      while (process.hrtime.bigint() < end) {
        const lba = (random ? BigInt(Math.floor(Math.random() * Number(span))) : next++ % span) * BigInt(blocks);
        const t0 = process.hrtime.bigint();
        await (write ? qp.write(1, lba, blocks, buf, offset) : qp.read(1, lba, blocks, buf, offset));
        const t1 = process.hrtime.bigint();
        lat.push(Number(t1 - t0) / 1000);
        ios++;
        if (progress && t1 - lastReport > 1_000_000_000n) {
          lastReport = t1;
          const elapsed = Number(t1 - start) / 1e9;
          progress(ios / elapsed, elapsed);
        }
      }
    };
    await Promise.all(qps.flatMap((qp, q) => Array.from({ length: o.qd }, (_, k) => slot(qp, bufs[q], k * o.bs))));
  } finally {
    for (const qp of qps) qp.close();
    for (const b of bufs) {
      ctrl.release(b);
      b.free();
    }
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  lat.sort((a, b) => a - b);
  const pct = (p: number): number => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : 0);
  return {
    rw: o.rw, bs: o.bs, qd: o.qd, queues: o.queues, seconds, ios,
    iops: ios / seconds, mibps: (ios * o.bs) / seconds / (1 << 20),
    latencyUs: { p50: pct(0.5), p99: pct(0.99), max: lat.length ? lat[lat.length - 1] : 0 },
  };
}
