/**
 * Reading a BPF ring buffer map without ever blocking the event loop:
 * ring_buffer__consume is non-blocking and runs on an unref'd timer (and on
 * demand through consume()), so an idle ring costs one cheap call per tick.
 */
import { SyscallError } from '../errors/index.js';
import { libbpfError, nullError } from './fail.js';
import { ffi, readMemory, registerSampleCallback, unregisterCallback, warningMark, type Ptr } from './ffi.js';
import type { BpfMap } from './map.js';

/** Options of RingBuffer.open. */
export interface RingBufferOptions {
  /** Polling period of the background timer in ms; default 100. 0 disables the timer (call consume() yourself). */
  intervalMs?: number;
  /**
   * Receives errors thrown by onRecord (and failures of the ring) during
   * timer polls. Without it such an error is rethrown from the timer, which
   * makes it an uncaught exception: pass one in long-running code.
   */
  onError?: (err: unknown) => void;
}

/** A consumer of one ring buffer map; each record is handed over as a Buffer copy. */
export class RingBuffer implements Disposable {
  private rb: Ptr | null;
  private cb: Ptr | null;
  private timer: NodeJS.Timeout | undefined;
  private pending: unknown;
  private hasPending = false;
  private consuming = false;
  private closeRequested = false;
  private readonly label: string;
  private readonly onError: ((err: unknown) => void) | undefined;

  private constructor(rb: Ptr, cb: Ptr, label: string, opts: RingBufferOptions) {
    this.rb = rb;
    this.cb = cb;
    this.label = label;
    this.onError = opts.onError;
    const every = opts.intervalMs ?? 100;
    if (every > 0) {
      this.timer = setInterval(() => this.tick(), every);
      this.timer.unref();
    }
  }

  /**
   * Starts consuming `map` (a ringbuf map). `onRecord` runs synchronously
   * for each record, in order; a throw stops that round and is reported
   * through consume() or opts.onError. Throws SyscallError when libbpf cannot
   * set the ring up (e.g. mmap refused).
   */
  static open(map: BpfMap, onRecord: (data: Buffer) => void, opts: RingBufferOptions = {}): RingBuffer {
    if (map.type !== 'ringbuf') throw new TypeError(`open ring buffer on map ${map.label()}: it is a ${map.type} map`);
    let self: RingBuffer | undefined;
    const cb = registerSampleCallback((_ctx, data, size) => {
      try {
        onRecord(readMemory(data, Number(size)));
        return 0;
      } catch (err) {
        // A negative return makes libbpf stop this round; the error surfaces after it.
        if (self && !self.hasPending) {
          self.pending = err;
          self.hasPending = true;
        }
        return -1;
      }
    });
    const mark = warningMark();
    const rb = ffi().ring_buffer__new(map.fd, cb, null, null);
    if (rb === null) {
      const err = nullError(`open ring buffer on map ${map.label()}`, mark);
      unregisterCallback(cb);
      throw err;
    }
    self = new RingBuffer(rb, cb, map.label(), opts);
    return self;
  }

  /** Hands every record available now to onRecord; returns how many. Rethrows the first error onRecord threw. Never blocks. */
  consume(): number {
    if (this.rb === null) throw new SyscallError(`consume ring buffer ${this.label}: it is closed`, 9);
    this.consuming = true;
    let rc: number;
    try {
      rc = ffi().ring_buffer__consume(this.rb);
    } finally {
      this.consuming = false;
    }
    if (this.closeRequested) this.close();
    if (this.hasPending) {
      const err = this.pending;
      this.pending = undefined;
      this.hasPending = false;
      throw err;
    }
    if (rc < 0) throw libbpfError(`consume ring buffer ${this.label}`, rc);
    return rc;
  }

  /** Stops the timer and frees the ring (idempotent; safe to call from inside onRecord). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.consuming) {
      // libbpf is still walking the ring: free it once consume() returns.
      this.closeRequested = true;
      return;
    }
    if (this.rb !== null) ffi().ring_buffer__free(this.rb);
    this.rb = null;
    if (this.cb !== null) unregisterCallback(this.cb);
    this.cb = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private tick(): void {
    if (this.rb === null) return;
    try {
      this.consume();
    } catch (err) {
      if (!this.onError) throw err;
      this.onError(err);
    }
  }
}
