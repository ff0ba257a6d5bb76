/** A small client of the agent API for the CLI (the CNI entry point has its own, lighter one). */
import { request } from 'node:http';
import { PodnetError } from '../errors/index.js';

/** Sends one request to the agent socket and returns the parsed JSON body. */
export async function apiCall<T>(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 10_000): Promise<T> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise<T>((resolve, reject) => {
    const req = request(
      { socketPath, method, path, timeout: timeoutMs, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try { parsed = text ? JSON.parse(text) : {}; } catch { parsed = { msg: text }; }
          if (res.statusCode === 200) resolve(parsed as T);
          else reject(new PodnetError('API_ERROR', `${method} ${path}: agent answered ${res.statusCode}: ${(parsed as { msg?: string }).msg ?? text}`));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? `${err.code}: is the agent running?` : err.message;
      reject(new PodnetError('AGENT_UNREACHABLE', `connect to agent at ${socketPath}: ${why}`, { cause: err }));
    });
    if (payload) req.write(payload);
    req.end();
  });
}
