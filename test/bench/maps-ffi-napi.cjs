'use strict';
/**
 * The ffi-napi variant of test/bench/maps.ts: libbpf's bpf_map_update_elem
 * called through @2060.io/ffi-napi (the maintained fork; ffi-napi 4.0.3 does
 * not build on Node 20) with the same preallocated buffers and key walk as
 * the koffi variants. The map fd comes from the pin the driver made
 * (bpf_obj_get, also through ffi-napi). CommonJS because ffi-napi is.
 *
 * Usage: node test/bench/maps-ffi-napi.cjs --pin PATH --ops N --range R
 *   [--warmup W] [--max-ms MS] [--marker BYTE]
 * Prints one JSON line: {"op":"update","ops":..,"ns":..,"nsPerOp":..,"ffiNapi":"<version>"}.
 */
const { parseArgs } = require('node:util');

function positive(name, v, dflt, min) {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`parse --${name}: ${v} is not an integer >= ${min}`);
  return n;
}

function main() {
  const { values } = parseArgs({
    options: {
      pin: { type: 'string' },
      ops: { type: 'string' },
      range: { type: 'string' },
      warmup: { type: 'string' },
      'max-ms': { type: 'string' },
      marker: { type: 'string' },
    },
  });
  if (!values.pin) throw new Error('parse arguments: --pin is required');
  const ops = positive('ops', values.ops, 0, 1);
  const range = positive('range', values.range, 0, 1);
  const warmup = positive('warmup', values.warmup, 0, 0);
  const maxMs = positive('max-ms', values['max-ms'], 5000, 1);
  const marker = positive('marker', values.marker, 0xc1, 0);

  const ffi = require('@2060.io/ffi-napi');
  const ffiVersion = require('@2060.io/ffi-napi/package.json').version;
  const lib = ffi.Library('libbpf.so.1', {
    bpf_obj_get: ['int', ['string']],
    bpf_map_update_elem: ['int', ['int', 'pointer', 'pointer', 'uint64']],
  });
  const fd = lib.bpf_obj_get(values.pin);
  if (fd < 0) throw new Error(`open pinned map ${values.pin}: errno ${-fd}`);

  const key = Buffer.alloc(4);
  const keyView = new Uint32Array(key.buffer, key.byteOffset, 1);
  const value = Buffer.alloc(16, marker);
  const update = lib.bpf_map_update_elem;

  // Same shape as the koffi loops in maps.ts: key walk with wrap-around,
  // clock read every 1024 calls so the time bound stays out of the figure.
  const loop = (n, deadlineNs) => {
    let k = 0;
    let i = 0;
    for (; i < n; i++) {
      keyView[0] = k;
      const rc = update(fd, key, value, 0);
      if (rc !== 0) throw new Error(`update element ${k}: errno ${-rc}`);
      if (++k === range) k = 0;
      if ((i & 1023) === 1023 && process.hrtime.bigint() >= deadlineNs) return i + 1;
    }
    return i;
  };

  loop(warmup, process.hrtime.bigint() + BigInt(maxMs) * 250000n);
  const t0 = process.hrtime.bigint();
  const timed = loop(ops, t0 + BigInt(maxMs) * 1000000n);
  const ns = Number(process.hrtime.bigint() - t0);
  process.stdout.write(JSON.stringify({ op: 'update', ops: timed, calls: timed, ns, nsPerOp: timed > 0 ? ns / timed : 0, ffiNapi: ffiVersion }) + '\n');
}

try {
  main();
} catch (err) {
  process.stderr.write(`maps-ffi-napi: ${err && err.message ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
