import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ipam, PoolExhaustedError, parsePool, type IpamOwner, type IpamStore } from '../../agent/src/ipam/index.js';
import { ConfigError } from '../../agent/src/errors/index.js';

/** An in-memory IpamStore with the BPF_NOEXIST semantics of the real map. */
class FakeStore implements IpamStore {
  readonly m = new Map<string, IpamOwner>();
  constructor(readonly capacity = 1 << 16) {}
  insertIfAbsent(ip: string, owner: IpamOwner): boolean {
    if (this.m.has(ip)) return false;
    if (this.m.size >= this.capacity) throw Object.assign(new Error('map full'), { errnoName: 'E2BIG' });
    this.m.set(ip, owner);
    return true;
  }
  get(ip: string) { return this.m.get(ip); }
  delete(ip: string) { return this.m.delete(ip); }
  entries() { return this.m.entries(); }
}

test('a /24 pool reserves the network and broadcast addresses', () => {
  const p = parsePool('10.244.1.0/24');
  assert.equal(p.size, 254);
  const ipam = new Ipam(p, new FakeStore());
  assert.equal(ipam.allocate('c1', 'eth0'), '10.244.1.1');
  const all = Array.from({ length: 253 }, (_, i) => ipam.allocate(`x${i}`, 'eth0'));
  assert.equal(all.at(-1), '10.244.1.254');
  assert.ok(!all.includes('10.244.1.0') && !all.includes('10.244.1.255'));
});

test('pool exhaustion is a clear error, not a hang', () => {
  const ipam = new Ipam(parsePool('10.0.0.0/30'), new FakeStore());
  ipam.allocate('a', 'eth0');
  ipam.allocate('b', 'eth0');
  assert.throws(() => ipam.allocate('c', 'eth0'), (e: unknown) => e instanceof PoolExhaustedError && /10\.0\.0\.0\/30: pool exhausted/.test((e as Error).message));
});

test('a full BPF map reads as pool exhaustion', () => {
  const ipam = new Ipam(parsePool('10.0.0.0/24'), new FakeStore(1));
  ipam.allocate('a', 'eth0');
  assert.throws(() => ipam.allocate('b', 'eth0'), PoolExhaustedError);
});

test('allocation is idempotent per owner and skips addresses another writer took', () => {
  const store = new FakeStore();
  const ipam = new Ipam(parsePool('10.0.0.0/29'), store);
  // Another agent inserted .1 behind this one's back: NOEXIST makes us skip it.
  store.insertIfAbsent('10.0.0.1', { containerId: 'other', ifName: 'eth0', createdMs: 1 });
  const ip = ipam.allocate('c1', 'eth0');
  assert.equal(ip, '10.0.0.2');
  assert.equal(ipam.allocate('c1', 'eth0'), ip);
  assert.equal(ipam.lookup('c1', 'eth0'), ip);
});

test('release frees the owner address and freed addresses are not reused at once', () => {
  const ipam = new Ipam(parsePool('10.0.0.0/29'), new FakeStore());
  const a = ipam.allocate('a', 'eth0');
  assert.equal(ipam.release('a', 'eth0'), a);
  assert.equal(ipam.release('a', 'eth0'), undefined);
  assert.notEqual(ipam.allocate('b', 'eth0'), a);
  assert.deepEqual(ipam.usage(), { pool: '10.0.0.0/29', size: 6, used: 1, free: 5 });
});

test('a new allocator rebuilds its owner index from the store (agent restart)', () => {
  const store = new FakeStore();
  const first = new Ipam(parsePool('10.0.0.0/28'), store);
  const ip = first.allocate('c1', 'net1');
  const second = new Ipam(parsePool('10.0.0.0/28'), store);
  assert.equal(second.lookup('c1', 'net1'), ip);
  assert.equal(second.usage().used, 1);
  assert.equal(second.allocate('c1', 'net1'), ip);
});

test('releaseAllBut frees exactly the allocations not in the valid list', () => {
  const ipam = new Ipam(parsePool('10.0.0.0/28'), new FakeStore());
  ipam.allocate('keep', 'eth0');
  ipam.allocate('drop1', 'eth0');
  ipam.allocate('keep', 'eth1');
  ipam.allocate('drop2', 'eth0');
  const released = ipam.releaseAllBut([{ containerId: 'keep', ifName: 'eth0' }, { containerId: 'keep', ifName: 'eth1' }]);
  assert.deepEqual(released.map((r) => r.owner.containerId).sort(), ['drop1', 'drop2']);
  assert.deepEqual(ipam.allocations().map((a) => `${a.owner.containerId}/${a.owner.ifName}`), ['keep/eth0', 'keep/eth1']);
});

test('bad pod CIDRs name the field and say why', () => {
  assert.throws(() => parsePool('10.0.0.1/24'), (e: unknown) => e instanceof ConfigError && /pod-cidr.*host bits set.*10\.0\.0\.0\/24/.test((e as Error).message));
  assert.throws(() => parsePool('nonsense'), /invalid config pod-cidr: "nonsense" is not a CIDR/);
  assert.throws(() => parsePool('10.0.0.0/31'), /between \/8 and \/30/);
  assert.throws(() => parsePool('fd00::/64'), /IPv6 pod CIDRs are not supported yet/);
});
