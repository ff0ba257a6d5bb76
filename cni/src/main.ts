/**
 * Entry point of the `podnet` CNI binary: binds the dispatcher to this
 * process (env, fd 0/1/2) and exits with its status. cni/build.mjs bundles it
 * into one CommonJS file and compiles that with bun into one executable; it
 * must stay free of FFI, Kubernetes clients and agent code, because the
 * runtime's start-up is the plugin's whole latency floor. The same code runs
 * under node (the bundle alone) and under bun (the executable).
 */
import { readFileSync, writeSync } from 'node:fs';
import { createAgentClient } from './agent-client.js';
import { runCni } from './dispatch.js';
import { CniError, ErrorCode } from './spec.js';

/** Bounded retries for a non-blocking fd that is momentarily full. */
const MAX_EAGAIN_RETRIES = 1000;

/**
 * Writes all of `text` to `fd` synchronously. Going through fs instead of
 * process.stdout keeps the tty/stream machinery out of start-up, and the
 * output is complete before process.exit().
 */
function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  let retries = 0;
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || ++retries > MAX_EAGAIN_RETRIES) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

/** Reads all of stdin; falls back to the stream API when fd 0 is non-blocking. */
async function readStdin(): Promise<string> {
  try {
    return readFileSync(0, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function main(): void {
  runCni({
    env: process.env,
    readStdin,
    writeStdout: (t) => writeAll(1, t),
    writeStderr: (t) => writeAll(2, t),
    agent: createAgentClient,
  }).then(
    (code) => process.exit(code),
    (err: unknown) => {
      // runCni does not reject; this guards the guarantee of one JSON answer.
      writeAll(1, `${JSON.stringify(new CniError(ErrorCode.Internal, `run podnet CNI: ${String(err)}`).toJSON())}\n`);
      process.exit(1);
    },
  );
}

main();
