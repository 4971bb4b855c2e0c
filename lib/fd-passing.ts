// Handing VFIO and iommufd fds to another process over an AF_UNIX socket (SCM_RIGHTS): a small
// privileged helper opens the nodes, an unprivileged driver gets the open fds and wraps them
// with VfioDevice.fromFd / Iommufd.fromFd. Sockets here are plain fds the caller owns.
import { describe, optionsObject, toIndex } from './args';
import { native } from './native';

/** What sendFds() takes for each fd: a number, or an open VfioDevice, Iommufd, VfioGroup or VfioContainer. */
export type PassableFd = number | { readonly fd: number };

/** Options of receiveFds(). */
export interface ReceiveFdsOptions {
  /** Most fds accepted in the message (default 16, at most 253); a message with more is refused, its fds closed. */
  maxFds?: number;
  /** Most message bytes accepted (default 4096). */
  maxBytes?: number;
  /** Give up with ETIMEDOUT after this long (default: wait as long as it takes). */
  timeoutMs?: number;
}

/** One message from receiveFds(). */
export interface ReceivedFds {
  /** The fds, in the order they were sent; close-on-exec, and the caller's to close or wrap. */
  fds: number[];
  /** The message's bytes. */
  message: Uint8Array;
}

/**
 * A connected pair of AF_UNIX SOCK_SEQPACKET sockets (close-on-exec). Give one end to a child
 * process in its stdio (`spawn(cmd, args, { stdio: ['inherit', 'inherit', 'inherit', fd] })`
 * makes it the child's fd 3) and close it here; keep the other. Closing them is yours
 * (`fs.closeSync`).
 */
export function socketPair(): [number, number] {
  return native.socketPair();
}

/**
 * Send `fds` (numbers, or open library objects: their current fd) over the Unix socket fd
 * `socket` in one message with `message` (default one byte; at least one byte always goes).
 * The receiver gets duplicates; the fds stay open here.
 */
export function sendFds(socket: number, fds: PassableFd[], message?: Uint8Array | string): void {
  const sock = toIndex(socket, 'socket', 0x7fffffff);
  if (!Array.isArray(fds)) throw new TypeError(`fds must be an array, got ${describe(fds)}`);
  if (fds.length > 253) throw new RangeError(`at most 253 fds go in one message (SCM_MAX_FD), got ${fds.length}`);
  const list = new Int32Array(fds.length);
  fds.forEach((f, i) => {
    const fd = typeof f === 'object' && f !== null ? f.fd : f;
    list[i] = toIndex(fd, `fds[${i}]`, 0x7fffffff);
  });
  let bytes: Uint8Array;
  if (message === undefined) bytes = Uint8Array.of(0x46);
  else if (typeof message === 'string') bytes = new TextEncoder().encode(message);
  else if (message instanceof Uint8Array) bytes = message;
  else throw new TypeError(`message must be a Uint8Array or a string, got ${describe(message)}`);
  if (bytes.length === 0) throw new RangeError('message must hold at least one byte');
  native.sendFds(sock, list, bytes);
}

/**
 * Receive one message and the fds it carries from the Unix socket fd `socket`, blocking this
 * thread until it arrives (or `timeoutMs`: ETIMEDOUT); null when the peer has closed the
 * connection (or this thread is being stopped: a worker blocked here can be terminated). Meant
 * for setup (the fds of a helper, once), or a worker thread.
 */
export function receiveFds(socket: number, options?: ReceiveFdsOptions): ReceivedFds | null {
  const sock = toIndex(socket, 'socket', 0x7fffffff);
  const opts = optionsObject(options, 'options');
  const maxFds = opts.maxFds === undefined ? 16 : toIndex(opts.maxFds, 'options.maxFds', 253);
  const maxBytes = opts.maxBytes === undefined ? 4096 : toIndex(opts.maxBytes, 'options.maxBytes', 1 << 20);
  if (maxBytes === 0) throw new RangeError('options.maxBytes must be at least 1');
  const timeoutMs = opts.timeoutMs === undefined ? -1 : toIndex(opts.timeoutMs, 'options.timeoutMs');
  const got = native.receiveFds(sock, maxFds, maxBytes, timeoutMs);
  return got === null ? null : { fds: Array.from(got[0]), message: got[1] };
}
