// The forked child of upstream's fork_gone and fork_present (iommufd.c), as a second node process
// given the parent's iommufd as fd 3: it maps 16 pages of its own memory, filled with a pattern
// the parent checks, at `iova` in IOAS `ioasId` — a mapping whose pages belong to another mm.
// 'gone' then exits; 'present' says "mapped" and stays until its stdin closes.
//
//   node fork-child.mjs <ioasId> <iova> <gone|present>
import { fileURLToPath } from 'node:url';
import { DmaBuffer, Iommufd } from 'vfio';

const SIZE = 16 * 4096;
/** The pattern byte at offset i (iommufd.test.mjs checks the same). */
export const patternAt = (i) => (i * 7 + 3) & 0xff;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [ioasId, iova, mode] = process.argv.slice(2);
  const iommufd = Iommufd.fromFd(3, { own: false });
  const buf = DmaBuffer.alloc(SIZE);
  for (let i = 0; i < SIZE; i++) buf.bytes[i] = patternAt(i);
  iommufd.ioasFromId(Number(ioasId)).map(buf, { iova: BigInt(iova) });
  if (mode === 'present') {
    process.stdout.write('mapped\n');
    process.stdin.resume();
    process.stdin.on('end', () => process.exit(0));
  } else {
    process.exit(0);
  }
}
