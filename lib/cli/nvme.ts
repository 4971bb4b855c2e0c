// vfio nvme identify|smart <bdf>: an NVMe controller's identity or health, through vfio/nvme.
import { NvmeController } from '../nvme';
import { findDevice, hex, oneBdf, table, UsageError, type Command } from './common';

const SUBCOMMANDS = ['identify', 'smart'] as const;

export const nvme: Command = {
  name: 'nvme',
  args: 'identify|smart <bdf>',
  summary: "an NVMe controller's identity (identify) or SMART/health log (smart), via vfio/nvme",
  options: { json: 'print JSON' },
  run(positionals, options) {
    const [sub, ...rest] = positionals;
    if (!SUBCOMMANDS.includes(sub as (typeof SUBCOMMANDS)[number])) {
      throw new UsageError(`nvme takes identify or smart, got ${sub === undefined ? 'nothing' : `'${sub}'`}`);
    }
    const bdf = oneBdf(rest, `nvme ${sub}`);
    findDevice(bdf);
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
