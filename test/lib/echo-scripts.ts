/**
 * What the Service traffic tests share: small node programs they run
 * inside network namespaces (`node -e <script> args...`, so a test needs no
 * tool the machine may lack), and an uplink to an "outside" namespace.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/**
 * A TCP and UDP echo server: argv name, host, tcpPort, udpPort. Answers
 * "name:" + what it got, prints "ready" once both listen, and exits on its
 * own after 180 s should the test that started it be gone.
 */
export const ECHO_SERVER = `
const net = require('node:net'), dgram = require('node:dgram');
const [name, host, tcpPort, udpPort] = process.argv.slice(1);
let up = 0; const ready = () => { if (++up === 2) console.log('ready'); };
net.createServer((s) => s.on('data', (d) => s.end(name + ':' + d))).listen(Number(tcpPort), host, ready);
const u = dgram.createSocket('udp4');
u.on('message', (m, r) => u.send(name + ':' + m, r.port, r.address));
u.bind(Number(udpPort), host, ready);
setTimeout(() => process.exit(0), 180000).unref();
`;

/**
 * One TCP exchange or connected-UDP datagram, 2.5 s at most: argv proto
 * (tcp|udp), host, port, message. Prints JSON {ok, peer, data} or
 * {ok: false, code}.
 */
export const ECHO_CLIENT = `
const net = require('node:net'), dgram = require('node:dgram');
const [proto, host, port, msg] = process.argv.slice(1);
const done = (o) => { console.log(JSON.stringify(o)); process.exit(0); };
setTimeout(() => done({ ok: false, code: 'TIMEOUT' }), 2500);
if (proto === 'tcp') {
  const s = net.connect(Number(port), host);
  let data = '';
  s.on('connect', () => s.write(msg));
  s.on('data', (d) => (data += d));
  s.on('end', () => done({ ok: true, peer: s.remoteAddress + ':' + s.remotePort, data }));
  s.on('error', (e) => done({ ok: false, code: e.code }));
} else {
  const u = dgram.createSocket('udp4');
  u.on('error', (e) => done({ ok: false, code: e.code }));
  u.connect(Number(port), host, () => u.send(msg));
  u.on('message', (m, r) => done({ ok: true, peer: r.address + ':' + r.port, data: String(m) }));
}
`;

/** What ECHO_CLIENT prints. */
export type EchoReply = { ok: boolean; peer?: string; data?: string; code?: string };

/**
 * Gives a test node an uplink: a veth in the host namespace with the node
 * address `<net>.1/30`, its far end `eth0` (`<net>.2/30`) in a new "outside"
 * namespace of the node's, where a client stands for the world beyond the
 * node. `net` is a /30's first three octets of the test's own.
 */
export function outsideUplink(node: { netns(label: string): { name: string; path: string } }, label: string, ifPrefix: string, net: string): { outside: { name: string; path: string }; uplink: string; nodeAddr: string; outsideAddr: string } {
  const outside = node.netns(label);
  const uplink = `${ifPrefix}${randomBytes(3).toString('hex').slice(0, 3)}`;
  const nodeAddr = `${net}.1`;
  const outsideAddr = `${net}.2`;
  execFileSync('ip', ['link', 'add', uplink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside.name]);
  execFileSync('ip', ['addr', 'add', `${nodeAddr}/30`, 'dev', uplink]);
  execFileSync('ip', ['link', 'set', uplink, 'up']);
  for (const cmd of [['addr', 'add', `${outsideAddr}/30`, 'dev', 'eth0'], ['link', 'set', 'eth0', 'up'], ['link', 'set', 'lo', 'up']]) {
    execFileSync('ip', ['netns', 'exec', outside.name, 'ip', ...cmd]);
  }
  return { outside, uplink, nodeAddr, outsideAddr };
}

/**
 * Starts ECHO_SERVER in namespace `ns` (on the host with ns undefined),
 * resolves once it listens (10 s at most). The caller stops the child.
 */
export async function startEchoServer(ns: string | undefined, name: string, host: string, tcpPort: number, udpPort: number): Promise<ChildProcess> {
  const argv = [process.execPath, '-e', ECHO_SERVER, name, host, String(tcpPort), String(udpPort)];
  const child = ns ? spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] }) : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`start echo server ${name}: not ready after 10 s`)), 10_000);
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d));
      child.stdout!.on('data', (d: Buffer) => { if (String(d).includes('ready')) { clearTimeout(t); resolve(); } });
      child.on('exit', (code) => { clearTimeout(t); reject(new Error(`start echo server ${name}: exited ${code}: ${err}`)); });
    });
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return child;
}
