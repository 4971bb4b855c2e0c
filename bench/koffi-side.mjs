// The koffi column of the benchmarks: the same syscalls as the C program, made from JS through
// koffi (the FFI package users reach for) with hand-packed structs, on the second edu between
// the C runs. What a user without this library would write; the ioctl numbers and flags come
// from the library's constants (native/uapi.h), the edu register map from examples/edu.ts.
import koffi from 'koffi';
import { constants as K } from 'vfio';
import { EDU } from '../examples/build/edu.js';

const libc = koffi.load('libc.so.6');
const open = libc.func('int open(const char *path, int flags)');
const close = libc.func('int close(int fd)');
const ioctl = libc.func('int ioctl(int fd, unsigned long req, _Inout_ uint8_t *arg)');
const pread = libc.func('long pread(int fd, _Out_ uint8_t *buf, size_t n, long off)');
const pwrite = libc.func('long pwrite(int fd, uint8_t *buf, size_t n, long off)');
const mmap = libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)');
const munmap = libc.func('int munmap(void *addr, size_t len)');
const eventfd = libc.func('int eventfd(unsigned int initval, int flags)');
const read = libc.func('long read(int fd, _Out_ uint8_t *buf, size_t n)');
const abs = libc.func('int abs(int x)');
const getppid = libc.func('int getppid()');

const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
const PROT_RW = 3;
const MAP_SHARED = 1;
const MAP_ANONYMOUS = 0x20;
const MAP_POPULATE = 0x8000;
const MAP_FAILED = 0xffffffffffffffffn;

function check(ret, what) {
  if (ret < 0 || ret === MAP_FAILED) throw new Error(`koffi side: ${what} failed, errno ${koffi.errno()}`);
  return ret;
}
const bytes = (words) => new Uint8Array(words.buffer);
const now = () => process.hrtime.bigint();
const perOp = (t0, n) => Number(now() - t0) / n;

/** Open the edu at `cdevPath` the way the C program does: bind, IOAS, attach, BAR0, MSI. */
export function openKoffi(cdevPath) {
  const dev = check(open(cdevPath, O_RDWR | O_CLOEXEC), `open ${cdevPath}`);
  const ictx = check(open('/dev/iommu', O_RDWR | O_CLOEXEC), 'open /dev/iommu');
  check(ioctl(dev, K.VFIO_DEVICE_BIND_IOMMUFD, bytes(new Uint32Array([16, 0, ictx, 0]))), 'bind');
  const alloc = new Uint32Array([12, 0, 0]);
  check(ioctl(ictx, K.IOMMU_IOAS_ALLOC, bytes(alloc)), 'ioas alloc');
  const ioas = alloc[2];
  check(ioctl(dev, K.VFIO_DEVICE_ATTACH_IOMMUFD_PT, bytes(new Uint32Array([12, 0, ioas]))), 'attach');
  const regionInfo = (index) => {
    const r = new BigUint64Array(4);
    new Uint32Array(r.buffer).set([32, 0, index, 0]);
    check(ioctl(dev, K.VFIO_DEVICE_GET_REGION_INFO, bytes(r)), 'region info');
    return { size: r[2], offset: r[3] };
  };
  const bar0 = regionInfo(0);
  const barPtr = check(mmap(null, Number(bar0.size), PROT_RW, MAP_SHARED, dev, Number(bar0.offset)), 'mmap bar0');
  const bar = new Uint32Array(koffi.view(barPtr, Number(bar0.size)));
  const cfg = Number(regionInfo(7).offset);
  const cmd = new Uint8Array(2);
  check(pread(dev, cmd, 2, cfg + 4), 'read command');
  cmd[0] |= 4; // bus master
  check(pwrite(dev, cmd, 2, cfg + 4), 'write command');
  const efd = check(eventfd(0, O_CLOEXEC), 'eventfd');
  const set = new Uint32Array([24, K.VFIO_IRQ_SET_DATA_EVENTFD | K.VFIO_IRQ_SET_ACTION_TRIGGER, K.VFIO_PCI_MSI_IRQ_INDEX, 0, 1, efd]);
  check(ioctl(dev, K.VFIO_DEVICE_SET_IRQS, bytes(set)), 'set irqs');
  const anon = (len) => ({ ptr: check(mmap(null, len, PROT_RW, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0), 'mmap anonymous'), len });
  return { dev, ictx, ioas, bar, barPtr, barSize: Number(bar0.size), bar0Offset: Number(bar0.offset), efd,
    buf4k: anon(4096), buf2m: anon(2 << 20) };
}

export function closeKoffi(ctx) {
  for (const b of [ctx.buf4k, ctx.buf2m]) munmap(b.ptr, b.len);
  munmap(ctx.barPtr, ctx.barSize);
  close(ctx.efd);
  close(ctx.dev);
  close(ctx.ictx);
}

/** The cheapest call through koffi (a libc function without a syscall): its floor. */
export function koffiFloor() {
  const n = 200000;
  let sink = 0;
  const t0 = now();
  for (let i = 0; i < n; i++) sink += abs(-i);
  return sink > 0 ? perOp(t0, n) : 0;
}

/** One run of a bench through koffi, in ns per operation; null where koffi has no counterpart. */
export function koffiRun(ctx, key) {
  const { dev, ictx, bar } = ctx;
  let n;
  let t0;
  let sink = 0;
  switch (key) {
    case 'syscall':
      n = 100000;
      t0 = now();
      for (let i = 0; i < n; i++) sink += getppid();
      return sink > 0 ? perOp(t0, n) : 0;
    case 'getinfo': {
      const info = new Uint32Array(6);
      const b = bytes(info);
      n = 20000;
      t0 = now();
      for (let i = 0; i < n; i++) {
        info[0] = 24;
        if (ioctl(dev, K.VFIO_DEVICE_GET_INFO, b) < 0) throw new Error('get info');
        sink += info[2];
      }
      return perOp(t0, n);
    }
    case 'regioninfo': {
      const r = new BigUint64Array(4);
      const w = new Uint32Array(r.buffer);
      const b = bytes(r);
      n = 20000;
      t0 = now();
      for (let i = 0; i < n; i++) {
        w[0] = 32;
        w[1] = 0;
        w[2] = 0;
        w[3] = 0;
        if (ioctl(dev, K.VFIO_DEVICE_GET_REGION_INFO, b) < 0) throw new Error('region info');
        sink += Number(r[2]);
      }
      return perOp(t0, n);
    }
    case 'pread32': {
      const v = new Uint8Array(4);
      n = 20000;
      t0 = now();
      for (let i = 0; i < n; i++) {
        if (pread(dev, v, 4, ctx.bar0Offset) !== 4) throw new Error('pread');
        sink += v[0];
      }
      return perOp(t0, n);
    }
    case 'mmio32':
      n = 200000;
      t0 = now();
      for (let i = 0; i < n; i++) sink += Atomics.load(bar, 0);
      return perOp(t0, n);
    case 'mmiow32':
      // A plain typed-array store: what a koffi user writes (no barrier, no width promise).
      n = 50000;
      t0 = now();
      for (let i = 0; i < n; i++) bar[EDU.LIVENESS / 4] = i;
      return perOp(t0, n);
    case 'mmioblock':
      n = 5000;
      t0 = now();
      for (let i = 0; i < n; i++) for (let r = 0; r < 64; r++) sink += Atomics.load(bar, r);
      return perOp(t0, n * 64);
    case 'map4k':
    case 'map2m': {
      const buf = key === 'map4k' ? ctx.buf4k : ctx.buf2m;
      const m = new BigUint64Array(5);
      const mw = new Uint32Array(m.buffer);
      const u = new BigUint64Array(3);
      const uw = new Uint32Array(u.buffer);
      const mb = bytes(m);
      const ub = bytes(u);
      n = key === 'map4k' ? 2000 : 500;
      t0 = now();
      for (let i = 0; i < n; i++) {
        mw.set([40, K.IOMMU_IOAS_MAP_FIXED_IOVA | K.IOMMU_IOAS_MAP_WRITEABLE | K.IOMMU_IOAS_MAP_READABLE, ctx.ioas, 0]);
        m[2] = buf.ptr;
        m[3] = BigInt(buf.len);
        m[4] = 0x200000n;
        if (ioctl(ictx, K.IOMMU_IOAS_MAP, mb) < 0) throw new Error(`map: errno ${koffi.errno()}`);
        uw[0] = 24;
        uw[1] = ctx.ioas;
        u[1] = 0x200000n;
        u[2] = BigInt(buf.len);
        if (ioctl(ictx, K.IOMMU_IOAS_UNMAP, ub) < 0) throw new Error(`unmap: errno ${koffi.errno()}`);
      }
      return perOp(t0, n);
    }
    case 'irq': {
      // Blocking read of the eventfd: the same as waitSync().
      const v = new Uint8Array(8);
      n = 2000;
      t0 = now();
      for (let i = 0; i < n; i++) {
        bar[EDU.IRQ_RAISE / 4] = 1;
        if (read(ctx.efd, v, 8) !== 8) throw new Error('read eventfd');
        bar[EDU.IRQ_ACK / 4] = Atomics.load(bar, EDU.IRQ_STATUS / 4);
      }
      return perOp(t0, n);
    }
    default:
      return sink === -1 ? 0 : null;
  }
}

let inProcess = null;
/**
 * The C program's loops, built as bench/out/vfio-bench.so and loaded into this process: one run
 * of each of `keys` on the edu at `cdevPath` (opened and closed around them), in ns per op.
 */
export function cInProcessRun(soPath, cdevPath, keys) {
  if (inProcess === null) {
    const lib = koffi.load(soPath);
    inProcess = {
      setup: lib.func('int vfio_bench_setup(const char *path)'),
      run: lib.func('double vfio_bench_run(const char *name)'),
      teardown: lib.func('void vfio_bench_teardown()'),
      op: lib.func('int vfio_bench_op(int which)'),
    };
  }
  inProcess.setup(cdevPath);
  try {
    const loops = Object.fromEntries(keys.map((k) => [k, inProcess.run(k)]));
    // The same ops one per call from a JS loop (koffi's own call cost, its floor, taken out).
    // Each loop written out (one call site per op, as koffiRun's are); map4k as the library makes
    // it: a map call, then an unmap call.
    const { op } = inProcess;
    const ok = (r) => {
      if (r !== 0) throw new Error(`vfio_bench_op failed, errno ${koffi.errno()}`);
    };
    const loop = (k, n) => {
      const t0 = now();
      switch (k) {
        case 'getinfo': for (let i = 0; i < n; i++) ok(op(0)); break;
        case 'regioninfo': for (let i = 0; i < n; i++) ok(op(1)); break;
        case 'pread32': for (let i = 0; i < n; i++) ok(op(2)); break;
        default: for (let i = 0; i < n; i++) { ok(op(3)); ok(op(4)); }
      }
      return perOp(t0, n);
    };
    const perCall = {};
    for (const [k, calls, n] of [['getinfo', 1, 20000], ['regioninfo', 1, 20000], ['pread32', 1, 20000], ['map4k', 2, 2000]]) {
      loop(k, n); // warms the calls up
      perCall[k] = loop(k, n) - calls * koffiFloor();
    }
    return { loops, perCall };
  } finally {
    inProcess.teardown();
  }
}
