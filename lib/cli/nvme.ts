// vfio nvme identify|smart <bdf>: an NVMe controller's identity or health, through vfio/nvme.
import type * as NvmeModule from '../nvme';
import type * as NvmePerfModule from './nvme-perf';
import { findDevice, hex, oneBdf, table, UsageError, type Command } from './common';

const SUBCOMMANDS = ['identify', 'smart', 'perf'] as const;

export const nvme: Command = {
  name: 'nvme',
  args: 'identify|smart|perf <bdf>',
  summary: "an NVMe controller's identity, SMART/health log, or polled I/O performance, via vfio/nvme",
  options: { json: 'print JSON' },
  values: {
    rw: { description: 'perf: randread, randwrite, read or write', default: 'randread' },
    bs: { description: 'perf: bytes per command', default: '4096' },
    qd: { description: 'perf: commands in flight per queue pair', default: '32' },
    time: { description: 'perf: seconds to run', default: '5' },
    queues: { description: 'perf: queue pairs', default: '1' },
  },
  run(positionals, options, values) {
    const [sub, ...rest] = positionals;
    if (!SUBCOMMANDS.includes(sub as (typeof SUBCOMMANDS)[number])) {
      throw new UsageError(`nvme takes identify, smart or perf, got ${sub === undefined ? 'nothing' : `'${sub}'`}`);
    }
    const bdf = oneBdf(rest, `nvme ${sub}`);
    findDevice(bdf);
    if (sub === 'perf') return runPerf(bdf, options.json === true, values);
    // Loaded here, not at the top: the rest of the CLI starts without the NVMe driver.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { NvmeController } = require('../nvme') as typeof NvmeModule;
    const ctrl = NvmeController.open(bdf);
    try {
      const json = options.json === true;
      if (sub === 'identify') {
        const id = ctrl.identify();
        const out = { bdf, vid: id.vid, ssvid: id.ssvid, serial: id.serial, model: id.model, firmware: id.firmware,
          mdts: id.mdts, nn: id.nn, namespaces: ctrl.namespaces.map((n) => ({ ...n, blockCount: String(n.blockCount) })) };
        if (json) {
          console.log(JSON.stringify(out, null, 2));
        } else {
          console.log(`${bdf}  ${id.model} (serial ${id.serial}, firmware ${id.firmware}), vendor ${hex(id.vid, 4)}`);
          console.log(`  max transfer ${ctrl.maxTransfer} bytes, ${id.nn} namespace(s), queues up to ${ctrl.maxQueueEntries} entries`);
          console.log(table([['  NSID', 'BLOCKS', 'BLOCK SIZE', 'BYTES'],
            ...ctrl.namespaces.map((n) => [`  ${n.nsid}`, String(n.blockCount), String(n.blockSize),
              String(n.blockCount * BigInt(n.blockSize))])]));
        }
      } else {
        const fields = Object.entries(ctrl.smart()).filter(([k]) => k !== 'raw');
        const out = Object.fromEntries(fields.map(([k, v]) => [k, typeof v === 'bigint' ? String(v) : v]));
        if (json) console.log(JSON.stringify({ bdf, ...out }, null, 2));
        else console.log(table([['FIELD', 'VALUE'], ...Object.entries(out).map(([k, v]) => [k, String(v)])]));
      }
    } finally {
      ctrl.close();
    }
    return 0;
  },
};

async function runPerf(bdf: string, json: boolean, values: Record<string, string>): Promise<number> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { NvmeController } = require('../nvme') as typeof NvmeModule;
  const { perf, perfOptions } = require('./nvme-perf') as typeof NvmePerfModule;
  /* eslint-enable @typescript-eslint/no-require-imports */
  const o = perfOptions(values);
  const ctrl = NvmeController.open(bdf);
  try {
    const live = !json && process.stdout.isTTY;
    const r = await perf(ctrl, o, live ? (iops, t) => process.stdout.write(`\r${t.toFixed(0)} s: ${iops.toFixed(0)} IOPS`) : undefined);
    if (live) process.stdout.write('\n');
    if (json) {
      console.log(JSON.stringify({ bdf, ...r }, null, 2));
    } else {
      console.log(`${bdf} ${r.rw} bs ${r.bs} qd ${r.qd} x ${r.queues} queue(s), ${r.seconds.toFixed(1)} s, polled`);
      console.log(`  ${r.iops.toFixed(0)} IOPS, ${r.mibps.toFixed(1)} MiB/s; latency p50 ${r.latencyUs.p50.toFixed(1)} us, ` +
        `p99 ${r.latencyUs.p99.toFixed(1)} us, max ${r.latencyUs.max.toFixed(1)} us`);
    }
    return 0;
  } finally {
    ctrl.close();
  }
}
