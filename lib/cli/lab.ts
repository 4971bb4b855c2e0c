// vfio lab [options] -- <command>: run a command in the lab, a QEMU guest with VT-d and emulated
// VFIO devices on a kernel built and cached on first use (lab/run.mjs, shipped in the package).
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { Command } from './common';

/** The lab's runner in the installed package. */
const RUNNER = path.join(__dirname, '..', '..', 'lab', 'run.mjs');

export const lab: Command = {
  name: 'lab',
  args: '[--kernel 6.12|7.3] [--device edu|edu-noiommu|nvme|nvme-sriov|mtty ...] [--timeout s] -- <command>',
  summary: 'run a command in the lab: a QEMU guest with VT-d and VFIO devices, no hardware needed',
  options: {},
  run(argv) {
    const r = spawnSync(process.execPath, [RUNNER, ...argv], { stdio: 'inherit' });
    if (r.error) throw r.error;
    return r.status ?? 1;
  },
};

/** `vfio lab ...` takes the runner's own options, untouched by the CLI's parser. */
export function isLab(argv: string[]): boolean {
  return argv[0] === 'lab' && argv[1] !== '--help' && argv[1] !== '-h';
}
