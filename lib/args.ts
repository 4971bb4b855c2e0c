// Argument checks shared by the public classes: TypeError/RangeError naming the argument.

/** 2^53 - 1 and 2^64 - 1 as bigints. */
export const MAX_SAFE_N = BigInt(Number.MAX_SAFE_INTEGER);
/** @see MAX_SAFE_N */
export const MAX_U64 = 0xffff_ffff_ffff_ffffn;

/**
 * An IOVA, length or file offset (a bigint, or a safe non-negative integer number), validated and
 * returned as a number when it is a safe integer (cheap arithmetic and map keys), else a bigint.
 */
export function u64Arg(value: unknown, name: string): number | bigint {
  if (typeof value === 'number') {
    if (value >= 0 && Number.isSafeInteger(value)) return value;
    throw new RangeError(`${name} must be a non-negative safe integer or a bigint, got ${value}`);
  }
  if (typeof value === 'bigint') {
    if (value <= MAX_SAFE_N && value >= 0n) return Number(value);
    if (value > MAX_SAFE_N && value <= MAX_U64) return value;
    throw new RangeError(`${name} must be from 0 to 2^64-1, got ${value}`);
  }
  throw new TypeError(`${name} must be a bigint or a number, got ${describe(value)}`);
}

/** The same as {@link u64Arg}, always as a bigint. */
export function toU64(value: unknown, name: string): bigint {
  return BigInt(u64Arg(value, name));
}

/** A non-negative integer `number` (sizes and offsets inside a region or buffer). */
export function toIndex(value: unknown, name: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${describe(value)}`);
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${name} must be an integer from 0 to ${max}, got ${value}`);
  }
  return value;
}

/**
 * A register value of `bits` bits (8, 16 or 32): any integer from -2^(bits-1) to 2^bits - 1,
 * stored as its low `bits` bits (JS bitwise operators give signed results: `cc | 0x80000000`).
 */
export function toRegister(value: unknown, name: string, bits: 8 | 16 | 32): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${describe(value)}`);
  const max = bits === 32 ? 0xffffffff : (1 << bits) - 1;
  const min = -(2 ** (bits - 1));
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return bits === 32 ? value >>> 0 : value & max;
}

/**
 * A 64-bit register value: a bigint from -2^63 to 2^64 - 1 or a safe integer number, as its low
 * 64 bits.
 */
export function toRegister64(value: unknown, name: string): bigint {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new RangeError(`${name} must be a safe integer or a bigint, got ${value}`);
    return BigInt.asUintN(64, BigInt(value));
  }
  if (typeof value !== 'bigint') throw new TypeError(`${name} must be a bigint or a number, got ${describe(value)}`);
  if (value < -(2n ** 63n) || value > MAX_U64) throw new RangeError(`${name} must be from -2^63 to 2^64-1, got ${value}`);
  return BigInt.asUintN(64, value);
}

/** A path or name for a syscall: a string without NUL bytes (the kernel would stop at the first). */
export function toPath(value: unknown, name: string): string {
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string, got ${describe(value)}`);
  if (value.includes('\0')) throw new TypeError(`${name} must not contain a NUL byte, got ${describe(value)}`);
  return value;
}

/** An options argument: undefined becomes {}, anything but an object is a TypeError. */
export function optionsObject<T extends object>(value: T | undefined, name: string): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object') throw new TypeError(`${name} must be an object, got ${describe(value)}`);
  return value;
}

/** A short description of a value for error messages ("the string '3'", "an array"). */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') {
    try {
      // A Proxy or a getter can throw here: the description must not.
      const ctor: unknown = (value as { constructor?: { name?: unknown } }).constructor?.name;
      return `an instance of ${typeof ctor === 'string' && ctor ? ctor : 'Object'}`;
    } catch {
      return 'an object';
    }
  }
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
  switch (typeof value) {
    case 'number':
    case 'bigint':
    case 'boolean':
      return `${typeof value} ${String(value)}`;
    case 'symbol':
      return `symbol ${value.toString()}`;
    default:
      return 'undefined';
  }
}

/**
 * The `offset`/`length` options that select a non-empty part of something `size` bytes long
 * (`length` defaults to the rest), checked: RangeError naming `what` otherwise.
 */
export function rangeOption(offsetOpt: unknown, lengthOpt: unknown, size: number, what: string): { offset: number; length: number } {
  const offset = offsetOpt === undefined ? 0 : toIndex(offsetOpt, 'options.offset');
  if (offset >= size) throw new RangeError(`options.offset ${offset} is outside ${what} (size ${size})`);
  const length = lengthOpt === undefined ? size - offset : toIndex(lengthOpt, 'options.length');
  if (length === 0) throw new RangeError('options.length must not be 0');
  if (offset + length > size) {
    throw new RangeError(`options.offset ${offset} + options.length ${length} is outside ${what} (size ${size})`);
  }
  return { offset, length };
}
