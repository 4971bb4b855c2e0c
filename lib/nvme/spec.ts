// NVMe 1.4 facts the driver uses: controller registers, opcodes, queue entry sizes, status names.

/** Controller registers (BAR0). */
export const REG = Object.freeze({
  CAP: 0x00, VS: 0x08, CC: 0x14, CSTS: 0x1c, AQA: 0x24, ASQ: 0x28, ACQ: 0x30, DOORBELLS: 0x1000,
});

/** CC fields. */
export const CC = Object.freeze({ EN: 1, IOSQES: 6 << 16, IOCQES: 4 << 20, SHN_NORMAL: 1 << 14 });

/** CSTS fields. */
export const CSTS = Object.freeze({ RDY: 1, CFS: 2, SHST_MASK: 0xc, SHST_COMPLETE: 0x8 });

export const SQE_SIZE = 64;
export const CQE_SIZE = 16;
export const PAGE = 4096;

/** Admin command opcodes. */
export const ADMIN = Object.freeze({
  DELETE_SQ: 0x00, CREATE_SQ: 0x01, GET_LOG_PAGE: 0x02, DELETE_CQ: 0x04, CREATE_CQ: 0x05, IDENTIFY: 0x06,
  SET_FEATURES: 0x09, GET_FEATURES: 0x0a,
});

/** NVM command opcodes. */
export const NVM = Object.freeze({ FLUSH: 0x00, WRITE: 0x01, READ: 0x02 });

/** Status names by status code type and code (generic, command specific, media errors). */
const STATUS: Record<number, Record<number, string>> = {
  0: {
    0x00: 'Successful Completion', 0x01: 'Invalid Command Opcode', 0x02: 'Invalid Field in Command',
    0x03: 'Command ID Conflict', 0x04: 'Data Transfer Error', 0x05: 'Commands Aborted due to Power Loss Notification',
    0x06: 'Internal Error', 0x07: 'Command Abort Requested', 0x08: 'Command Aborted due to SQ Deletion',
    0x09: 'Command Aborted due to Failed Fused Command', 0x0a: 'Command Aborted due to Missing Fused Command',
    0x0b: 'Invalid Namespace or Format', 0x0c: 'Command Sequence Error', 0x13: 'PRP Offset Invalid',
    0x80: 'LBA Out of Range', 0x81: 'Capacity Exceeded', 0x82: 'Namespace Not Ready',
  },
  1: {
    0x00: 'Completion Queue Invalid', 0x01: 'Invalid Queue Identifier', 0x02: 'Invalid Queue Size',
    0x03: 'Abort Command Limit Exceeded', 0x08: 'Invalid Interrupt Vector', 0x09: 'Invalid Log Page',
    0x0c: 'Invalid Queue Deletion', 0x0d: 'Feature Identifier Not Saveable', 0x0e: 'Feature Not Changeable',
    0x80: 'Conflicting Attributes', 0x81: 'Invalid Protection Information', 0x82: 'Attempted Write to Read Only Range',
  },
  2: {
    0x80: 'Write Fault', 0x81: 'Unrecovered Read Error', 0x85: 'Compare Failure', 0x86: 'Access Denied',
    0x87: 'Deallocated or Unwritten Logical Block',
  },
};

/** The spec's name of a status (`'LBA Out of Range'`), or a generic description. */
export function statusName(sct: number, sc: number): string {
  return STATUS[sct]?.[sc] ?? `status code type ${sct}, status code 0x${sc.toString(16)}`;
}

/** A command the controller completed with an error status. */
export class NvmeError extends Error {
  /** Status code type (0 generic, 1 command specific, 2 media, 3 path, 7 vendor). */
  readonly sct: number;
  /** Status code. */
  readonly sc: number;
  /** Do Not Retry. */
  readonly dnr: boolean;
  /** The spec's name of the status. */
  readonly status: string;
  /** The command's opcode. */
  readonly opcode: number;

  constructor(statusField: number, opcode: number, queue: number) {
    const sc = statusField & 0xff;
    const sct = (statusField >> 8) & 0x7;
    const status = statusName(sct, sc);
    super(`${status} (opcode 0x${opcode.toString(16)} on ${queue === 0 ? 'the admin queue' : `queue ${queue}`})`);
    this.sct = sct;
    this.sc = sc;
    this.dnr = (statusField & 0x4000) !== 0;
    this.status = status;
    this.opcode = opcode;
  }
}
Object.defineProperty(NvmeError.prototype, 'name', { value: 'NvmeError', configurable: true, writable: true });
