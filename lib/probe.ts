// The kernel's pre-bind gate, probed for real: what a blocked cdev fd answers.
import { VfioError } from './errors';
import { native, pageSize, type NativeHandle } from './native';

/** What the kernel answered to each call on a blocked cdev fd. */
export interface ProbeReport {
  ioctl: string;
  read: string;
  write: string;
  mmap: string;
}

/**
 * Issue GET_INFO, a zero-length pread and pwrite, and an mmap (undone at once) on the device fd
 * `h`, and report the errno name the kernel returned for each (`'OK'` if one succeeded).
 */
export function probeGate(h: NativeHandle): ProbeReport {
  const answer = (fn: () => void): string => {
    try {
      fn();
      return 'OK';
    } catch (err) {
      if (err instanceof VfioError) return err.code;
      throw err;
    }
  };
  return {
    ioctl: answer(() => void native.deviceGetInfo(h)),
    read: answer(() => void native.devicePreadInto(h, 0, new Uint8Array(0))),
    write: answer(() => void native.devicePwrite(h, 0, new Uint8Array(0))),
    mmap: answer(() => native.mappingClose(native.deviceMmap(h, 0, pageSize(), false))),
  };
}
