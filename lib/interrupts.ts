import { EventEmitter } from 'node:events';
import { describe, optionsObject, toIndex } from './args';
import { flags as C } from './constants';
import { EINTR, ETIMEDOUT, VfioError, busyError, closedError, notMaskableError } from './errors';
import { hot, native, type NativeHandle } from './native';

const NO_WAIT_OPTIONS: WaitOptions = Object.freeze({});

/** What an Interrupts object needs from its device. */
export interface IrqOwner {
  /** @internal */
  _handle(syscall: string, ioctl?: string): NativeHandle;
  /** @internal */
  _forget(child: object): void;
  /** @internal Whether other Interrupts own vectors of the same index (disable() then leaves it on). */
  _irqShared?(irqs: Interrupts): boolean;
}

/** setTimeout's longest delay (2^31-1 ms); longer timeouts are chained. */
const MAX_TIMER_MS = 0x7fffffff;

/** Run `fn` after `ms` milliseconds, any safe integer of them; returns a cancel function. */
function longTimeout(ms: number, fn: () => void): () => void {
  let timer: NodeJS.Timeout;
  const deadline = Date.now() + ms;
  const arm = (left: number): void => {
    timer = setTimeout(() => {
      const rest = deadline - Date.now();
      if (rest > 0) arm(rest);
      else fn();
    }, Math.min(left, MAX_TIMER_MS));
  };
  arm(ms);
  return () => clearTimeout(timer);
}

function timedOut(vector: number, index: number, ms: number): VfioError {
  return new VfioError({
    errno: ETIMEDOUT, syscall: 'poll', code: 'ETIMEDOUT',
    message: `ETIMEDOUT: no interrupt on vector ${vector} of IRQ index ${index} within ${ms} ms`,
  });
}

/** One delivery: `count` interrupts on `vector` since the previous one. */
export interface InterruptEvent {
  vector: number;
  count: number;
}

interface Waiter {
  vector: number;
  resolve(count: number): void;
  reject(err: unknown): void;
}

/** Options of {@link Interrupts.wait}. */
export interface WaitOptions {
  /** Reject with ETIMEDOUT after this many milliseconds. */
  timeoutMs?: number;
  /** Reject with the signal's reason when aborted. */
  signal?: AbortSignal;
}

const RESOLVED = Promise.resolve();

/**
 * Interrupts of one IRQ index (INTx, MSI, MSI-X, ERR, REQ), each vector signalled through an
 * eventfd watched on the event loop. Emits `'interrupt'` with `(vector, count)`.
 * The eventfds are polled only while someone listens, so an Interrupts with no listeners never
 * keeps the process alive; interrupts that arrive meanwhile are counted by the eventfd and
 * delivered to the next listener.
 */
export class Interrupts extends EventEmitter {
  /** The VFIO IRQ index (0 INTx, 1 MSI, 2 MSI-X, 3 ERR, 4 REQ). */
  readonly index: number;
  /** First vector. */
  readonly start: number;
  /** Number of vectors. */
  readonly count: number;
  #owner: IrqOwner;
  /** Whether the index is maskable (irqInfo), or null when unknown (checks off): the kernel answers. */
  #maskable: boolean | null;
  #watchers: NativeHandle[] = [];
  /** Their keys for the fast-call eventfd read (native.handleKey). */
  #keys: number[] = [];
  /**
   * The delivery callbacks. Native code holds them weakly while not polling, so these strong
   * references are what keeps them alive: once user code drops this object (and its device), the
   * whole set can be collected and the finalizers close the fds.
   */
  #callbacks: Array<(count: number, errno: number) => void> = [];
  #polling = false;
  #stopQueued = false;
  #ref = true;
  #closed = false;
  /** Pending wait() calls: resolved straight from delivery, no listener churn per interrupt. */
  #waiters: Waiter[] = [];

  /**
   * @internal Use `device.enableIrq()`. `arm` routes the new eventfds in the device (default: one
   * SET_IRQS over exactly these vectors).
   */
  constructor(owner: IrqOwner, index: number, start: number, count: number, arm?: (fds: Int32Array) => void,
    maskable: boolean | null = null) {
    super();
    this.#owner = owner;
    this.#maskable = maskable;
    this.index = index;
    this.start = start;
    this.count = count;
    const fds = new Int32Array(count);
    try {
      for (let i = 0; i < count; i++) {
        const vector = start + i;
        const cb = (n: number, err: number): void => this.#deliver(vector, n, err);
        this.#callbacks.push(cb);
        const w = native.irqCreate(cb);
        this.#watchers.push(w);
        this.#keys.push(native.handleKey(w));
        fds[i] = native.irqFd(w);
      }
      if (arm) {
        arm(fds);
      } else {
        native.deviceSetIrqs(owner._handle('ioctl', 'VFIO_DEVICE_SET_IRQS'),
          C.VFIO_IRQ_SET_DATA_EVENTFD | C.VFIO_IRQ_SET_ACTION_TRIGGER, index, start, count, fds);
      }
    } catch (err) {
      this._dispose();
      throw err;
    }
    this.on('newListener', (event: string | symbol) => {
      if (event === 'interrupt') this.#update(this.listenerCount('interrupt') + 1 + this.#waiters.length);
    });
    this.on('removeListener', (event: string | symbol) => {
      if (event === 'interrupt') this.#update(this.listenerCount('interrupt') + this.#waiters.length);
    });
  }

  /** Whether disable()/close() ran (or the device closed). */
  get closed(): boolean {
    return this.#closed;
  }

  #deliver(vector: number, count: number, errno: number): void {
    if (this.#closed) return;
    if (errno) {
      this.emit('error', new VfioError({ errno: -errno, syscall: 'read' }));
      return;
    }
    if (this.#waiters.length) {
      // One pass: the waiters of this vector resolve, the others stay (usually there is one).
      const waiters = this.#waiters;
      let kept: Waiter[] | null = null;
      let resolved = false;
      for (let i = 0; i < waiters.length; i++) {
        const w = waiters[i];
        if (w.vector !== vector) {
          (kept ??= []).push(w);
          continue;
        }
        if (!resolved) {
          resolved = true;
          this.#waiters = [];
        }
        w.resolve(count);
      }
      if (resolved) {
        if (kept) this.#waiters = kept.concat(this.#waiters);
        this.#update(this.listenerCount('interrupt') + this.#waiters.length);
      }
    }
    this.emit('interrupt', vector, count);
  }

  /**
   * Poll while someone listens or waits. Stopping is deferred by two microtask hops, so a loop
   * that awaits wait() and immediately waits again keeps the poll running instead of stopping
   * and restarting it (two native calls and two epoll_ctl) per interrupt.
   */
  #update(takers: number): void {
    if (this.#closed) return;
    if (takers > 0) {
      if (!this.#polling) this.#setPolling(true);
      return;
    }
    if (!this.#polling || this.#stopQueued) return;
    this.#stopQueued = true;
    // Two hops as promise reactions, not queueMicrotask (which makes an AsyncResource per call):
    // on the wait() path this runs once per interrupt.
    void RESOLVED.then(this.#stopHop);
  }

  readonly #stopHop = (): void => void RESOLVED.then(this.#stopCheck);
  readonly #stopCheck = (): void => {
    this.#stopQueued = false;
    if (!this.#closed && this.#polling && this.listenerCount('interrupt') + this.#waiters.length === 0) {
      this.#setPolling(false);
    }
  };

  #setPolling(on: boolean): void {
    for (const w of this.#watchers) {
      if (on) {
        native.irqStart(w);
        native.irqRef(w, this.#ref);
      } else {
        native.irqStop(w);
      }
    }
    this.#polling = on;
  }

  /** Keep the process alive while listeners wait (the default). */
  ref(): this {
    this.#ref = true;
    if (this.#polling) for (const w of this.#watchers) native.irqRef(w, true);
    return this;
  }

  /** Let the process exit even while listeners wait, like an unref'd timer. */
  unref(): this {
    this.#ref = false;
    if (this.#polling) for (const w of this.#watchers) native.irqRef(w, false);
    return this;
  }

  #checkVector(vector: unknown, name: string): number {
    const v = toIndex(vector, name, 0xffffffff);
    if (v < this.start || v >= this.start + this.count) {
      throw new RangeError(`${name} ${v} is not one of the enabled vectors ${this.start}..${this.start + this.count - 1}`);
    }
    return v;
  }

  #live(): void {
    if (this.#closed) {
      throw closedError('these interrupts were disabled');
    }
  }

  /** Resolve with the number of interrupts on `vector` at its next delivery. */
  wait(vector: number = this.start, options?: WaitOptions): Promise<number> {
    this.#live();
    const v = this.#checkVector(vector, 'vector');
    const opts = options === undefined ? NO_WAIT_OPTIONS : optionsObject(options, 'options');
    if (opts.timeoutMs !== undefined) toIndex(opts.timeoutMs, 'options.timeoutMs');
    const { signal, timeoutMs } = opts;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new TypeError(`options.signal must be an AbortSignal, got ${describe(signal)}`);
    }
    // An abort rejects with the signal's reason, whatever the caller chose it to be (as Node's APIs do).
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (signal === undefined && timeoutMs === undefined) {
      // The common case, without a timer or an abort to undo: the promise's own functions.
      return new Promise<number>((resolve, reject) => {
        this.#waiters.push({ vector: v, resolve, reject });
        this.#update(this.listenerCount('interrupt') + this.#waiters.length);
      });
    }
    return new Promise<number>((resolve, reject) => {
      let cancelTimer: (() => void) | undefined;
      const settle = (): void => {
        cancelTimer?.();
        signal?.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        vector: v,
        resolve: (count) => {
          settle();
          resolve(count);
        },
        reject: (err) => {
          settle();
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- an abort's reason, or a VfioError
          reject(err);
        },
      };
      const drop = (err: unknown): void => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        this.#update(this.listenerCount('interrupt') + this.#waiters.length);
        waiter.reject(err);
      };
      const onAbort = (): void => drop(signal?.reason);
      signal?.addEventListener('abort', onAbort);
      if (timeoutMs !== undefined) cancelTimer = longTimeout(timeoutMs, () => drop(timedOut(v, this.index, timeoutMs)));
      this.#waiters.push(waiter);
      this.#update(this.listenerCount('interrupt') + this.#waiters.length);
    });
  }

  /**
   * Block the thread in poll(2) until `vector` fires, and return its count: the tight loop of a
   * C driver, for worker threads and drivers that own their thread. Refused while 'interrupt'
   * listeners exist (it would take their deliveries). Throws ETIMEDOUT after `timeoutMs` (one
   * deadline, however often signals interrupt the wait), and EINTR early when a signal that JS
   * listens for arrives (so its handler runs) or the thread is told to stop (`worker.terminate()`,
   * `process.exit()`).
   */
  waitSync(vector: number = this.start, options?: { timeoutMs?: number }): number {
    this.#live();
    const v = this.#checkVector(vector, 'vector');
    const opts = optionsObject(options, 'options');
    const timeout = opts.timeoutMs === undefined ? -1 : toIndex(opts.timeoutMs, 'options.timeoutMs');
    if (this.#polling && this.listenerCount('interrupt') + this.#waiters.length === 0) this.#setPolling(false);
    if (this.#polling) {
      throw busyError(
        "waitSync() cannot run while 'interrupt' listeners (or a pending wait()) take the deliveries", 'poll');
    }
    const count = hot.irqWaitSync(this.#watchers[v - this.start], timeout);
    if (count > 0) return count;
    if (count === 0) throw timedOut(v, this.index, timeout);
    throw new VfioError({
      errno: EINTR, syscall: 'poll', code: 'EINTR',
      message: count === -1
        ? 'EINTR: a signal that JS listens for arrived while waitSync() waited; its handler runs once control returns ' +
          'to the event loop (call waitSync() again to keep waiting)'
        : 'EINTR: the thread is stopping (worker.terminate() or process.exit()) while waitSync() waited',
    });
  }

  /**
   * Read and clear the interrupts counted on `vector` since the last delivery, without blocking
   * (0 when none).
   */
  drain(vector: number = this.start): number {
    this.#live();
    const v = this.#checkVector(vector, 'vector');
    return hot.irqRead(this.#watchers[v - this.start], this.#keys[v - this.start]);
  }

  /** Deliveries as `{ vector, count }`, until disable()/close(). */
  async *[Symbol.asyncIterator](): AsyncGenerator<InterruptEvent, void, undefined> {
    this.#live();
    const queue: InterruptEvent[] = [];
    let wake: (() => void) | null = null;
    let done = false;
    const onInterrupt = (vector: number, count: number): void => {
      const last = queue.find((e) => e.vector === vector);
      if (last) last.count += count;
      else queue.push({ vector, count });
      wake?.();
    };
    const onClosed = (): void => {
      done = true;
      wake?.();
    };
    this.on('interrupt', onInterrupt);
    this.on('_closed', onClosed);
    try {
      for (;;) {
        while (queue.length) yield queue.shift()!;
        if (done) return;
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
    } finally {
      this.off('interrupt', onInterrupt);
      this.off('_closed', onClosed);
    }
  }

  #setIrqs(flags: number, start: number, count: number): void {
    this.#live();
    native.deviceSetIrqs(this.#owner._handle('ioctl', 'VFIO_DEVICE_SET_IRQS'), flags, this.index, start, count, null);
  }

  /** Fire `vector` from software (SET_IRQS DATA_NONE|ACTION_TRIGGER): a loopback test. */
  trigger(vector: number = this.start): void {
    const v = this.#checkVector(vector, 'vector');
    this.#setIrqs(C.VFIO_IRQ_SET_DATA_NONE | C.VFIO_IRQ_SET_ACTION_TRIGGER, v, 1);
  }

  /** Mask the interrupt (INTx). */
  mask(): void {
    this.#checkMaskable('mask');
    this.#setIrqs(C.VFIO_IRQ_SET_DATA_NONE | C.VFIO_IRQ_SET_ACTION_MASK, this.start, this.count);
  }

  /** Unmask the interrupt (INTx is automasked: unmask after each one to re-arm it). */
  unmask(): void {
    this.#checkMaskable('unmask');
    this.#setIrqs(C.VFIO_IRQ_SET_DATA_NONE | C.VFIO_IRQ_SET_ACTION_UNMASK, this.start, this.count);
  }

  #checkMaskable(what: string): void {
    this.#live();
    if (this.#maskable === false) {
      throw notMaskableError(`${what}(): IRQ index ${this.index} is not maskable (its irqInfo().maskable is false; ` +
        'vfio-pci masks only INTx): use disable() and enableIrq() instead');
    }
  }

  /**
   * Stop delivery and switch off exactly this set's vectors in the device: the whole index when
   * no other set owns vectors of it, else only these vectors (their eventfds are set to -1), so
   * other sets keep delivering. Idempotent.
   */
  disable(): void {
    if (this.#closed) return;
    try {
      if (this.#owner._irqShared?.(this)) {
        native.deviceSetIrqs(this.#owner._handle('ioctl', 'VFIO_DEVICE_SET_IRQS'),
          C.VFIO_IRQ_SET_DATA_EVENTFD | C.VFIO_IRQ_SET_ACTION_TRIGGER, this.index, this.start, this.count,
          new Int32Array(this.count).fill(-1));
      } else {
        this.#setIrqs(C.VFIO_IRQ_SET_DATA_NONE | C.VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0);
      }
    } finally {
      this._dispose();
    }
  }

  /** @internal The eventfd of `vector` (for re-enabling a whole index with every owner's fds). */
  _fdOf(vector: number): number {
    return native.irqFd(this.#watchers[vector - this.start]);
  }

  /** Same as disable(). */
  close(): void {
    this.disable();
  }

  [Symbol.dispose](): void {
    this.disable();
  }

  /** @internal Release the eventfds without telling the device (it is closing). */
  _dispose(): void {
    if (this.#closed) return;
    this.#closed = true;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) {
      w.reject(closedError('the interrupts were disabled while waiting', 'poll'));
    }
    for (const w of this.#watchers) native.irqClose(w);
    this.#watchers = [];
    this.#keys = [];
    this.#callbacks = [];
    this.#polling = false;
    this.#owner._forget(this);
    this.emit('_closed');
  }
}
