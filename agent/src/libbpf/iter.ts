/**
 * BPF iterators (Linux 5.8): a program of an iter/<target> section runs once
 * per kernel object (a socket, a task, ...) while its output is read. Socket
 * iterators walk the sockets of the reading process's network namespace.
 */
import { readSync } from 'node:fs';
import { libbpfError } from './fail.js';
import { closeFd, ffi } from './ffi.js';
import type { Program } from './program.js';
import { AttachType } from './types.js';

/** Most an iterator run may print before it is stopped (its programs write fixed records). */
const MAX_OUTPUT = 64 << 20;

/**
 * Runs an iterator program to its end and returns what it wrote
 * (bpf_seq_write, BPF_SEQ_PRINTF). Throws SyscallError naming the step
 * ("run iterator sd_udp (id 9): create link: EINVAL").
 */
export function runIterator(prog: Program): Buffer {
  const link = ffi().bpf_link_create(prog.fd, 0, AttachType.TRACE_ITER, null);
  if (link < 0) throw libbpfError(`run iterator ${prog.label()}: create link`, link);
  try {
    const fd = ffi().bpf_iter_create(link);
    if (fd < 0) throw libbpfError(`run iterator ${prog.label()}: create iterator`, fd);
    try {
      const chunks: Buffer[] = [];
      let total = 0;
      for (;;) {
        const buf = Buffer.alloc(64 << 10);
        let n: number;
        try {
          n = readSync(fd, buf, 0, buf.length, null);
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          throw libbpfError(`run iterator ${prog.label()}: read`, e.errno !== undefined ? e.errno : -5);
        }
        if (n === 0) break;
        chunks.push(buf.subarray(0, n));
        total += n;
        if (total > MAX_OUTPUT) throw libbpfError(`run iterator ${prog.label()}: more than ${MAX_OUTPUT} bytes of output`, -7);
      }
      return Buffer.concat(chunks);
    } finally {
      closeFd(fd);
    }
  } finally {
    closeFd(link);
  }
}
