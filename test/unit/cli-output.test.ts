import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OUTPUT_FORMATS, json, print, table } from '../../agent/src/cli/output.js';

describe('table', () => {
  it('aligns columns two spaces apart under upper-case headers, without trailing spaces', () => {
    const out = table(['name', 'ip', 'ifindex'], [
      ['pod-a', '10.244.1.2', 12],
      ['a-much-longer-pod', '10.244.1.10', 3],
    ]);
    assert.equal(out, [
      'NAME               IP           IFINDEX',
      'pod-a              10.244.1.2   12',
      'a-much-longer-pod  10.244.1.10  3',
      '',
    ].join('\n'));
    for (const line of out.split('\n')) assert.equal(line, line.trimEnd(), `trailing spaces in ${JSON.stringify(line)}`);
  });

  it('widens a column to its header when the header is the longest cell', () => {
    assert.equal(table(['endpoint', 'x'], [['1', 'y']]), 'ENDPOINT  X\n1         y\n');
  });

  it('prints "-" for an undefined cell and keeps the columns aligned', () => {
    assert.equal(table(['pod', 'ns', 'ip'], [['p1', undefined, '10.0.0.1'], ['p22', 'kube', undefined]]), [
      'POD  NS    IP',
      'p1   -     10.0.0.1',
      'p22  kube  -',
      '',
    ].join('\n'));
  });

  it('renders numbers and bigints as decimal text', () => {
    assert.equal(table(['bytes', 'packets'], [[18446744073709551615n, 0]]), 'BYTES                 PACKETS\n18446744073709551615  0\n');
  });

  it('prints only the header line when there are no rows', () => {
    assert.equal(table(['a', 'bb'], []), 'A  BB\n');
  });
});

describe('json', () => {
  it('pretty-prints with two spaces and a final newline', () => {
    assert.equal(json({ a: 1, b: ['x'] }), '{\n  "a": 1,\n  "b": [\n    "x"\n  ]\n}\n');
  });

  it('writes a bigint that fits a double exactly as a number, nested anywhere', () => {
    const text = json({ packets: 42n, perCpu: [1n, 2n], deep: { max: BigInt(Number.MAX_SAFE_INTEGER) } });
    assert.deepEqual(JSON.parse(text), { packets: 42, perCpu: [1, 2], deep: { max: Number.MAX_SAFE_INTEGER } });
  });

  it('writes a bigint above 2^53-1 as a decimal string so no digit is lost', () => {
    const text = json({ bytes: 18446744073709551615n, justOver: BigInt(Number.MAX_SAFE_INTEGER) + 1n });
    assert.deepEqual(JSON.parse(text), { bytes: '18446744073709551615', justOver: '9007199254740992' });
  });

  it('writes a negative bigint that fits as a number', () => {
    assert.deepEqual(JSON.parse(json({ delta: -5n, min: -BigInt(Number.MAX_SAFE_INTEGER) })), { delta: -5, min: -Number.MAX_SAFE_INTEGER });
  });

  it('writes a negative bigint below -(2^53-1) as a string, since it does not fit either', () => {
    assert.deepEqual(JSON.parse(json({ v: -(2n ** 60n) - 1n })), { v: '-1152921504606846977' });
  });
});

describe('print', () => {
  const rows = [{ name: 'a', n: 1n }];
  const toTable = (d: typeof rows): string => table(['name', 'n'], d.map((r) => [r.name, r.n]));

  it('writes JSON through the sink for -o json', () => {
    const got: string[] = [];
    print('json', rows, toTable, (s) => got.push(s));
    assert.deepEqual(got, [json(rows)]);
    assert.deepEqual(JSON.parse(got[0]!), [{ name: 'a', n: 1 }]);
  });

  it('writes the table through the sink for -o table', () => {
    const got: string[] = [];
    print('table', rows, toTable, (s) => got.push(s));
    assert.deepEqual(got, ['NAME  N\na     1\n']);
  });

  it('offers exactly the table and json formats', () => {
    assert.deepEqual([...OUTPUT_FORMATS], ['table', 'json']);
  });
});
