/**
 * The request/reply protocol against a scripted fake kernel: acknowledgements,
 * errors with extended acks, sequence and port checks, multi-part and
 * interrupted dumps, timeouts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MessageWriter,
  NetlinkConn,
  NetlinkHandle,
  decodeError,
  decodeMessages,
  encodeLinkDump,
  rtnl,
  writeIfInfoMsg,
  type NetlinkTransport,
} from '../../agent/src/netlink/index.js';
import { NetlinkError, SyscallError } from '../../agent/src/errors/index.js';

const PORT = 31337;

/** What the fake kernel answers to one request: datagrams, each a list of messages. */
type Script = (req: { type: number; seq: number; flags: number; index: number; raw: Buffer }) => Buffer[][];

/** A transport whose replies come from a script; recv returns -EAGAIN when nothing is queued. */
class FakeKernel implements NetlinkTransport {
  readonly portId = PORT;
  readonly sent: Buffer[] = [];
  private readonly queue: Buffer[] = [];
  constructor(private readonly script: Script) {}
  send(msg: Buffer): number {
    const raw = Buffer.from(msg);
    this.sent.push(raw);
    const req = { type: raw.readUInt16LE(4), flags: raw.readUInt16LE(6), seq: raw.readUInt32LE(8), index: raw.length >= 24 ? raw.readInt32LE(20) : 0, raw };
    for (const datagram of this.script(req)) this.queue.push(Buffer.concat(datagram));
    return msg.length;
  }
  recv(buf: Buffer): number {
    const d = this.queue.shift();
    if (!d) return -11;
    d.copy(buf, 0, 0, Math.min(d.length, buf.length));
    return d.length;
  }
  close(): void {}
}

/** An RTM_NEWLINK as the kernel would send it. */
function linkMsg(seq: number, index: number, name: string, flags = 0, pid = PORT): Buffer {
  const w = new MessageWriter();
  w.begin(rtnl.RTM_NEWLINK, flags, seq, pid);
  writeIfInfoMsg(w, { index, flags: rtnl.IFF_UP });
  w.attrString(rtnl.IFLA_IFNAME, name);
  w.attrU32(rtnl.IFLA_MTU, 1500);
  return Buffer.from(w.finish());
}

/** An NLMSG_ERROR (errno 0 = ACK) with the request header echoed (capped) and an optional extended-ack message. */
function errMsg(seq: number, errno: number, extAck?: string, pid = PORT): Buffer {
  const w = new MessageWriter();
  w.begin(rtnl.NLMSG_ERROR, rtnl.NLM_F_CAPPED | (extAck ? rtnl.NLM_F_ACK_TLVS : 0), seq, pid);
  w.i32(-errno);
  w.u32(16).u16(rtnl.RTM_NEWLINK).u16(rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK).u32(seq).u32(0);
  if (extAck) w.attrString(rtnl.NLMSGERR_ATTR_MSG, extAck);
  return Buffer.from(w.finish());
}

/** An NLMSG_DONE carrying `errno` (0 for a clean end). */
function doneMsg(seq: number, flags = 0, errno = 0, extAck?: string): Buffer {
  const w = new MessageWriter();
  w.begin(rtnl.NLMSG_DONE, rtnl.NLM_F_MULTI | flags | (extAck ? rtnl.NLM_F_ACK_TLVS : 0), seq, PORT);
  w.i32(-errno);
  if (extAck) w.attrString(rtnl.NLMSGERR_ATTR_MSG, extAck);
  return Buffer.from(w.finish());
}

test('an NLMSG_ERROR captured from the kernel yields its errno and extended-ack message', () => {
  // Linux 6.18's answer to "set MTU 70000 on a veth", without NETLINK_CAP_ACK: the whole request is echoed, then the TLVs.
  const captured = Buffer.from(
    '60000000020000020700000036200000eaffffff28000000100005000700000000000000000000000200000000000000000000000800040070110100' +
      '240001006d74752067726561746572207468616e20646576696365206d6178696d756d00',
    'hex',
  );
  const [msg] = decodeMessages(captured);
  assert.ok(msg);
  const status = decodeError(msg);
  assert.equal(status.errno, 22);
  assert.equal(status.extAck, 'mtu greater than device maximum');
  assert.deepEqual(status.request, { type: rtnl.RTM_NEWLINK, seq: 7 });
});

test('a refused request throws NetlinkError naming the operation and carrying the extended ack', () => {
  const kernel = new FakeKernel((req) => {
    if (req.type === rtnl.RTM_GETLINK) return [[linkMsg(req.seq, 2, 'eth0'), errMsg(req.seq, 0)]];
    return [[errMsg(req.seq, 22, 'mtu greater than device maximum')]];
  });
  const h = NetlinkHandle.fromTransport(kernel);
  assert.throws(
    () => h.setMtu(2, 70000),
    (e: unknown) => {
      assert.ok(e instanceof NetlinkError);
      assert.equal(e.errnoName, 'EINVAL');
      assert.equal(e.extAck, 'mtu greater than device maximum');
      // The link's name was looked up only because the request failed.
      assert.equal(e.message, 'set mtu 70000 on link eth0: EINVAL (mtu greater than device maximum)');
      return true;
    },
  );
});

test('an acknowledged request returns after exactly one round trip', () => {
  const kernel = new FakeKernel((req) => [[errMsg(req.seq, 0)]]);
  const h = NetlinkHandle.fromTransport(kernel);
  h.setUp(3);
  assert.equal(kernel.sent.length, 1);
});

test('linkByName returns undefined when the kernel answers ENODEV', () => {
  const kernel = new FakeKernel((req) => [[errMsg(req.seq, 19)]]);
  assert.equal(NetlinkHandle.fromTransport(kernel).linkByName('nope0'), undefined);
});

test('deleteLink surfaces ENODEV as a NetlinkError callers can recognise', () => {
  const kernel = new FakeKernel((req) => [[errMsg(req.seq, 19, 'Device not found')]]);
  assert.throws(
    () => NetlinkHandle.fromTransport(kernel).deleteLink(44),
    (e: unknown) => e instanceof NetlinkError && e.errnoName === 'ENODEV' && e.message.startsWith('delete link ifindex 44: ENODEV'),
  );
});

test('a dump flagged NLM_F_DUMP_INTR is read to its end and then requested again', () => {
  let attempt = 0;
  const kernel = new FakeKernel((req) => {
    attempt++;
    if (attempt === 1) {
      const f = rtnl.NLM_F_MULTI | rtnl.NLM_F_DUMP_INTR;
      return [[linkMsg(req.seq, 1, 'lo', f), linkMsg(req.seq, 2, 'stale0', f)], [doneMsg(req.seq, rtnl.NLM_F_DUMP_INTR)]];
    }
    return [[linkMsg(req.seq, 1, 'lo', rtnl.NLM_F_MULTI), linkMsg(req.seq, 3, 'fresh0', rtnl.NLM_F_MULTI)], [doneMsg(req.seq)]];
  });
  const links = NetlinkHandle.fromTransport(kernel).links();
  assert.deepEqual(
    links.map((l) => l.name),
    ['lo', 'fresh0'],
  );
  assert.equal(kernel.sent.length, 2);
  assert.notEqual(kernel.sent[0]!.readUInt32LE(8), kernel.sent[1]!.readUInt32LE(8), 'the retry uses a new sequence number');
});

test('a dump that keeps being interrupted fails with EINTR after a bounded number of attempts', () => {
  const kernel = new FakeKernel((req) => [[linkMsg(req.seq, 1, 'lo', rtnl.NLM_F_MULTI | rtnl.NLM_F_DUMP_INTR), doneMsg(req.seq, rtnl.NLM_F_DUMP_INTR)]]);
  const h = NetlinkHandle.fromTransport(kernel, { dumpAttempts: 3 });
  assert.throws(
    () => h.links(),
    (e: unknown) => e instanceof NetlinkError && e.errnoName === 'EINTR' && /list links \(dump interrupted 3 times in a row\)/.test(e.message),
  );
  assert.equal(kernel.sent.length, 3);
});

test('a dump spread over several datagrams is collected up to NLMSG_DONE', () => {
  const kernel = new FakeKernel((req) => [
    [linkMsg(req.seq, 1, 'a', rtnl.NLM_F_MULTI)],
    [linkMsg(req.seq, 2, 'b', rtnl.NLM_F_MULTI), linkMsg(req.seq, 3, 'c', rtnl.NLM_F_MULTI)],
    [linkMsg(req.seq, 4, 'd', rtnl.NLM_F_MULTI), doneMsg(req.seq)],
  ]);
  assert.deepEqual(
    NetlinkHandle.fromTransport(kernel).links().map((l) => l.index),
    [1, 2, 3, 4],
  );
});

test('a dump whose NLMSG_DONE carries an error throws it with the extended ack', () => {
  const kernel = new FakeKernel((req) => [[doneMsg(req.seq, 0, 22, 'Invalid values in header for link dump request')]]);
  assert.throws(
    () => NetlinkHandle.fromTransport(kernel).links(),
    (e: unknown) => e instanceof NetlinkError && e.errnoName === 'EINVAL' && e.extAck === 'Invalid values in header for link dump request',
  );
});

test('late replies to an earlier request are skipped by sequence number', () => {
  const kernel = new FakeKernel((req) => [[errMsg(req.seq - 1, 22, 'stale answer'), linkMsg(req.seq - 1, 9, 'old0')], [linkMsg(req.seq, 2, 'eth0'), errMsg(req.seq, 0)]]);
  const link = NetlinkHandle.fromTransport(kernel).linkByIndex(2);
  assert.equal(link?.name, 'eth0');
});

test('a reply addressed to another port is refused as EPROTO', () => {
  const kernel = new FakeKernel((req) => [[errMsg(req.seq, 0, undefined, PORT + 1)]]);
  assert.throws(
    () => NetlinkHandle.fromTransport(kernel).setUp(1),
    (e: unknown) => e instanceof SyscallError && e.errnoName === 'EPROTO' && /set link ifindex 1 up: EPROTO \(reply addressed to port 31338/.test(e.message),
  );
});

test('no reply within the receive timeout surfaces as ETIMEDOUT naming the operation', () => {
  const kernel = new FakeKernel(() => []);
  assert.throws(
    () => NetlinkHandle.fromTransport(kernel).setDown(5),
    (e: unknown) => e instanceof SyscallError && e.errnoName === 'ETIMEDOUT' && e.message.startsWith('set link ifindex 5 down: ETIMEDOUT'),
  );
});

test('a datagram larger than the receive buffer is reported as EMSGSIZE, not parsed', () => {
  const kernel = new FakeKernel((req) => [[linkMsg(req.seq, 1, 'x'.repeat(200)), errMsg(req.seq, 0)]]);
  const conn = new NetlinkConn(kernel, { bufferSize: 64 });
  assert.throws(
    () => conn.dump('list links', encodeLinkDump(), () => 1),
    (e: unknown) => e instanceof SyscallError && e.errnoName === 'EMSGSIZE',
  );
  assert.equal(conn.broken, true);
});

test('a send failure reports the errno with the operation', () => {
  const kernel: NetlinkTransport = { portId: 1, send: () => -105, recv: () => -11, close: () => {} };
  assert.throws(
    () => NetlinkHandle.fromTransport(kernel).setUp(1),
    (e: unknown) => e instanceof SyscallError && e.errnoName === 'ENOBUFS' && e.message.startsWith('set link ifindex 1 up: ENOBUFS'),
  );
});

test('sequence numbers increase from one request to the next', () => {
  const kernel = new FakeKernel((req) => [[errMsg(req.seq, 0)]]);
  const h = NetlinkHandle.fromTransport(kernel);
  h.setUp(1);
  h.setUp(1);
  h.setUp(1);
  assert.deepEqual(
    kernel.sent.map((m) => m.readUInt32LE(8)),
    [1, 2, 3],
  );
});
