'use strict';
// Hostile arguments to every entry point: wrong types, missing fields, 10 MB strings, null
// bytes, getters that throw, prototype-pollution keys. Each gives a clear error (a
// TypeError or an Error with a stable code), never a crash, a hang or a message that
// repeats the input; and the process stays healthy.

const { describe, test, after } = require('node:test');
const assert = require('node:assert/strict');

const { CARD, Vault, keyringEntry, openVault, rejectsWith } = require('./support');

const BIG = 'x'.repeat(10 * 1024 * 1024);
const BIG_DIGITS = '4'.repeat(10 * 1024 * 1024);
const PAN = '4242424242424242';

/** Wrong-typed values for a string argument. */
const NOT_STRINGS = [
  undefined, null, 42, 4242424242424242, NaN, true, 10n, Symbol('s'), {}, [], ['a'], () => 'x',
  new Date(), new String('x'), Buffer.from('x'), new Map(), Promise.resolve('x'),
];

function describeValue(v) {
  if (typeof v === 'string') return `string(${v.length})`;
  if (typeof v === 'symbol' || typeof v === 'bigint') return typeof v;
  try { return `${typeof v} ${Object.prototype.toString.call(v)}`; } catch { return typeof v; }
}

/** Asserts an argument error: TypeError or Error with code INVALID_ARGUMENT, short message. */
async function rejectsArgument(promise, label, secrets = []) {
  let error;
  await assert.rejects(promise, (e) => { error = e; return true; }, label);
  assert.ok(error instanceof Error, `${label}: not an Error`);
  assert.equal(error.code, 'INVALID_ARGUMENT', `${label}: ${error.code} ${error.message}`);
  assert.ok(error.message.length < 300, `${label}: message of ${error.message.length} characters`);
  for (const s of secrets) assert.ok(!error.message.includes(s), `${label}: message repeats input`);
  return error;
}

async function healthy(vault) {
  const { id } = await vault.createSession();
  const { pin } = await vault.submit(id, CARD);
  assert.equal((await vault.reveal(id, pin)).fields.card_number, PAN);
}

describe('hostile arguments', () => {
  let vault;
  let id;
  test('setup', async () => {
    vault = await openVault('memory');
    ({ id } = await vault.createSession());
  });

  test('ids and PINs of the wrong type reject with a TypeError', async () => {
    for (const bad of NOT_STRINGS) {
      const label = describeValue(bad);
      const e1 = await rejectsArgument(vault.status(bad), `status(${label})`, [PAN]);
      assert.ok(e1 instanceof TypeError, label);
      await rejectsArgument(vault.cancel(bad), `cancel(${label})`);
      await rejectsArgument(vault.submit(bad, CARD), `submit(${label})`);
      const e2 = await rejectsArgument(vault.reveal(id, bad), `reveal(id, ${label})`, [PAN]);
      assert.ok(e2 instanceof TypeError, label);
      await rejectsArgument(vault.revealBuffers(id, bad), `revealBuffers(id, ${label})`);
    }
    // Missing arguments altogether.
    await rejectsArgument(vault.status(), 'status()');
    await rejectsArgument(vault.reveal(), 'reveal()');
    await rejectsArgument(vault.reveal(id), 'reveal(id)');
    await rejectsArgument(vault.submit(id), 'submit(id)');
  });

  test('10 MB strings and null bytes in ids and PINs', async () => {
    for (const bad of [BIG, BIG_DIGITS, `${id.slice(0, 42)}\0`, `\0${id.slice(1)}`, '', ' '.repeat(43)]) {
      await rejectsArgument(vault.status(bad), `status(${describeValue(bad)})`, [BIG_DIGITS.slice(0, 64)]);
    }
    for (const bad of [BIG_DIGITS, BIG, '1234\0', '12\u00003456', '１２３４５６', '', '-1234']) {
      await rejectsArgument(vault.reveal(id, bad), `reveal(pin ${describeValue(bad)})`, [BIG_DIGITS.slice(0, 64)]);
    }
    assert.equal((await vault.status(id)).attemptsLeft, 5, 'a malformed PIN used an attempt');
  });

  test('form fields: wrong shapes, wrong value types, 10 MB values, null bytes', async () => {
    const { id: session } = await vault.createSession();
    for (const bad of [null, 42, 'card', [], [CARD], () => CARD, Symbol('x'), 10n]) {
      await rejectsArgument(vault.submit(session, bad), `fields ${describeValue(bad)}`);
    }
    for (const bad of [4242424242424242, 10n, null, undefined, {}, [PAN], true, new Uint16Array(4)]) {
      const e = await rejectsArgument(vault.submit(session, { ...CARD, card_number: bad }), `card_number ${describeValue(bad)}`, [PAN, '4242']);
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /fields\.card_number/);
    }
    await rejectsArgument(vault.submit(session, { ...CARD, card_number: Buffer.from([0xff, 0xfe, 0x34]) }), 'invalid UTF-8');
    // A card number given as a field's name is never repeated in the message.
    for (const key of [PAN, `a${PAN}`, `card_${PAN.slice(0, 8)}`]) {
      const e = await rejectsArgument(vault.submit(session, { ...CARD, [key]: 1 }), 'a card number as a key', [PAN.slice(0, 7)]);
      assert.ok(!/\d{7}/.test(e.message), e.message);
    }

    // Oversized and null-byte values are the core's validation failures, without the value.
    const big = await rejectsWith(vault.submit(session, { ...CARD, card_number: BIG_DIGITS, cardholder_name: BIG }), 'VALIDATION_FAILED');
    assert.deepEqual(big.fields.map((f) => f.reason), ['too_long', 'too_long']);
    assert.ok(big.message.length < 100);
    const nul = await rejectsWith(vault.submit(session, { ...CARD, cardholder_name: 'Ada\0Lovelace', cvc: '1\u00003' }), 'VALIDATION_FAILED', ['Ada']);
    assert.deepEqual(nul.fields.map((f) => f.field).sort(), ['cardholder_name', 'cvc']);

    // A 10 MB field name, and a million fields.
    await rejectsArgument(vault.submit(session, { ...CARD, [BIG]: 'x' }), 'huge field name');
    const many = Object.fromEntries(Array.from({ length: 1_000_000 }, (_, i) => [`f${i}`, 'x']));
    await rejectsArgument(vault.submit(session, many), 'a million fields');
    assert.equal((await vault.status(session)).state, 'pending');
  });

  test('strings and buffers past 16 Mi are refused from their length, before any copy', async () => {
    const HUGE = 'y'.repeat(16 * 1024 * 1024 + 1);
    const { id: session } = await vault.createSession();
    const tooLong = async (promise, label) => {
      const e = await rejectsArgument(promise, label);
      assert.ok(e instanceof TypeError, label);
      assert.match(e.message, /at most 16 Mi(B| characters) long/, label);
    };
    await tooLong(vault.status(HUGE), 'id');
    await tooLong(vault.reveal(id, HUGE), 'pin');
    await tooLong(vault.submit(session, { ...CARD, cardholder_name: HUGE }), 'field value');
    await tooLong(vault.submit(session, { ...CARD, cardholder_name: Buffer.alloc(16 * 1024 * 1024 + 1, 0x41) }), 'field bytes');
    await tooLong(vault.submit(session, { ...CARD, [HUGE]: 'x' }), 'field name');
    await tooLong(vault.createSession({ metadata: { note: HUGE } }), 'metadata value');
    assert.equal((await vault.status(session)).state, 'pending');
    assert.equal((await vault.status(id)).attemptsLeft, 5, 'a refused PIN used an attempt');
  });

  test('lone surrogates are refused, not replaced', async () => {
    // N-API would turn each into U+FFFD: the stored name would differ from the one given.
    const { id: session } = await vault.createSession();
    for (const name of ['Ada \uD800Lovelace', 'Ada Lovelace\uDC00', 'Ada \uFFFD Lovelace']) {
      const e = await rejectsArgument(vault.submit(session, { ...CARD, cardholder_name: name }), `name ${JSON.stringify(name)}`, ['Ada', PAN]);
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /fields\.cardholder_name must be well-formed text/);
    }
    await rejectsArgument(vault.createSession({ metadata: { note: 'x\uD83D' } }), 'metadata value');
    // Two names that would both arrive as 'k\uFFFD'.
    for (const named of [
      vault.createSession({ metadata: { 'k\uD800': 'a', 'k\uDC00': 'b' } }),
      vault.submit(session, { ...CARD, ['x\uDBFF']: '1' }),
    ]) {
      const e = await rejectsArgument(named, 'a property name');
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /property name must be well-formed text/);
    }
    await rejectsArgument(vault.status(`${id.slice(0, 42)}\uD800`), 'id');
    await rejectsArgument(vault.reveal(id, '1234\uDFFF'), 'pin');
    assert.equal((await vault.status(session)).state, 'pending');
    assert.equal((await vault.status(id)).attemptsLeft, 5, 'a malformed PIN used an attempt');
    // A well-formed pair is text like any other.
    const { id: noted } = await vault.createSession({ metadata: { note: 'x \uD83D\uDE00' } });
    assert.equal((await vault.status(noted)).metadata.note, 'x \u{1F600}');
  });

  test('createSession options: wrong types, out of range, huge, unknown', async () => {
    const cases = [
      'x', 42, true, [], () => ({}),
      { ttlSeconds: '60' }, { ttlSeconds: NaN }, { ttlSeconds: Infinity }, { ttlSeconds: 1.5 },
      { ttlSeconds: -1 }, { ttlSeconds: 2 ** 64 }, { ttlSeconds: 10n }, { pinLength: 2 ** 40 },
      { maxAttempts: -5 }, { maxAttempts: 0 }, { fields: 'card_number' }, { fields: [1, 2] },
      { fields: [, 'cvc'] }, { fields: new Array(1_000_000).fill('a') }, { fields: ['Card Number'] },
      { fields: [BIG] }, { fields: ['card_number', 'card_number'] }, { metadata: 'x' },
      { metadata: [] }, { metadata: { k: 1 } }, { metadata: { k: null } }, { metadata: { k: BIG } },
      { metadata: { [BIG]: 'v' } }, { metadata: { k: 'a\0b' } }, { metadata: { 'a\0': 'b' } },
      { metadata: { '': 'v' } }, { metadata: Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, 'v'])) },
      { metadata: { note: `pan ${PAN}` } }, { ttl: 60 }, { [BIG]: 1 },
      Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`o${i}`, 1])),
    ];
    for (const options of cases) {
      await rejectsArgument(vault.createSession(options), `createSession(${describeValue(options)} ${Object.keys(Object(options))[0]?.slice(0, 20)})`, [PAN, BIG.slice(0, 100)]);
    }
  });

  test('prototype pollution: __proto__, constructor and prototype keys', async () => {
    // `__proto__` as an own key (JSON.parse makes one) is refused in metadata ...
    await rejectsArgument(vault.createSession({ metadata: JSON.parse('{"__proto__": {"polluted": "yes"}}') }), 'metadata __proto__ object');
    await rejectsArgument(vault.createSession({ metadata: JSON.parse('{"__proto__": "x"}') }), 'metadata __proto__ string');
    // ... and is an unknown field in a submission.
    const { id: session } = await vault.createSession();
    await rejectsArgument(vault.submit(session, JSON.parse(`{"__proto__": {"card_number": "${PAN}"}, "cvc": "123"}`)), 'fields __proto__', [PAN]);
    // An object literal's __proto__ sets the prototype: inherited values are never input.
    const inherited = await rejectsWith(vault.submit(session, { __proto__: { ...CARD } }), 'VALIDATION_FAILED');
    assert.equal(inherited.fields.length, 4);
    // constructor and prototype are ordinary keys: kept as data, as own properties.
    const { id: labelled } = await vault.createSession({ metadata: { constructor: 'c', prototype: 'p', toString: 't', hasOwnProperty: 'h' } });
    const status = await vault.status(labelled);
    assert.deepEqual(Object.entries(status.metadata).sort(), [['constructor', 'c'], ['hasOwnProperty', 'h'], ['prototype', 'p'], ['toString', 't']]);
    // Options objects refuse them as unknown options.
    await rejectsArgument(vault.createSession(JSON.parse('{"__proto__": {"ttlSeconds": 1}}')), 'options __proto__');
    await rejectsArgument(Vault.open(JSON.parse('{"__proto__": {"keys": {"development": true}}}')), 'open __proto__');
    // Nothing reached Object.prototype.
    assert.equal({}.polluted, undefined);
    assert.equal(Object.prototype.card_number, undefined);
  });

  test('a polluted Object.prototype is never read as input', async (t) => {
    Object.prototype.card_number = PAN; // eslint-disable-line no-extend-native
    Object.prototype.keys = { development: true }; // eslint-disable-line no-extend-native
    Object.prototype.ttlSeconds = 1; // eslint-disable-line no-extend-native
    t.after(() => {
      delete Object.prototype.card_number;
      delete Object.prototype.keys;
      delete Object.prototype.ttlSeconds;
    });
    const { id: session } = await vault.createSession({});
    assert.ok((await vault.status(session)).expiresAt.getTime() - Date.now() > 60_000, 'ttlSeconds was inherited');
    const e = await rejectsWith(vault.submit(session, { expiry: '12/34', cvc: '123', cardholder_name: 'Ada' }), 'VALIDATION_FAILED', [PAN]);
    assert.deepEqual(e.fields, [{ field: 'card_number', reason: 'required' }]);
    await rejectsArgument(Vault.open({}), 'keys inherited');
  });

  test('getters and proxies that throw: the caller\'s own exception comes back', async () => {
    const boom = () => { throw new Error('boom from a getter'); };
    const { id: session } = await vault.createSession();
    const fields = { ...CARD };
    Object.defineProperty(fields, 'cvc', { get: boom, enumerable: true });
    const trap = new Proxy({}, { ownKeys: boom });
    for (const call of [
      () => vault.submit(session, fields),
      () => vault.submit(session, trap),
      () => vault.createSession({ get ttlSeconds() { return boom(); } }),
      () => vault.createSession({ metadata: new Proxy({ a: 'b' }, { get: boom }) }),
      () => Vault.open({ keys: { get development() { return boom(); } } }),
    ]) {
      let thrown;
      try { await call(); } catch (e) { thrown = e; }
      assert.ok(thrown instanceof Error && /boom from a getter/.test(thrown.message), String(thrown));
    }
    assert.equal((await vault.status(session)).state, 'pending');
  });

  test('Vault.open: wrong types and shapes, huge and null-byte strings', async () => {
    const key = keyringEntry().key;
    const secret = key.toString('base64');
    const cases = [
      undefined, null, 'memory', 42, [], {},
      { keys: null }, { keys: 'k1:abc' }, { keys: {} }, { keys: { development: false } },
      { keys: { development: 'yes' } }, { keys: { env: 'A', file: '/x' } }, { keys: { keyring: [] } },
      { keys: { keyring: {} } }, { keys: { keyring: [{ id: 'k1' }] } }, { keys: { keyring: [{ key }] } },
      { keys: { keyring: [{ id: 'k1', key: secret }] } }, { keys: { keyring: [{ id: 'k1', key: key.subarray(0, 31) }] } },
      { keys: { keyring: [{ id: 'k1', key: new Float64Array(4) }] } }, { keys: { keyring: [{ id: 'k1', key: Buffer.alloc(32) }] } },
      { keys: { keyring: [{ id: 'k 1', key }] } }, { keys: { keyring: [{ id: BIG, key }] } },
      { keys: { keyring: [{ id: 'k1', key }, { id: 'k1', key }] } }, { keys: { keyring: [{ id: 'k1', key, extra: 1 }] } },
      { keys: { development: true }, store: 42 }, { keys: { development: true }, store: { type: 'disk' } },
      { keys: { development: true }, store: { type: 'memory', maxEntries: 0 } },
      { keys: { development: true }, store: { type: 'memory', maxEntries: '10' } },
      { keys: { development: true }, store: { type: 'redis' } }, { keys: { development: true }, store: { type: 'redis', url: 42 } },
      { keys: { development: true }, store: 'http://127.0.0.1:1' }, { keys: { development: true }, store: BIG },
      { keys: { development: true }, store: { type: 'redis', url: 'redis://127.0.0.1:1', keyPrefix: 'a{b}' } },
      { keys: { development: true }, store: { type: 'redis', url: 'redis://127.0.0.1:1', timeoutMs: 0 } },
      { keys: { development: true }, store: { type: 'redis', url: 'redis://127.0.0.1:1', caFile: '/ca.pem' } },
      { keys: { development: true }, store: { type: 'redis', url: ['redis://127.0.0.1:1', 'redis://127.0.0.1:2'], cluster: false } },
      { keys: { development: true }, store: { type: 'redis', url: 'redis://127.0.0.1:1', minReplicas: 0 } },
      { keys: { development: true }, store: { type: 'redis', url: 'redis://127.0.0.1:1', minReplicasTimeoutMs: 100 } },
      { keys: { development: true }, store: { type: 'redis', url: 'redis://127.0.0.1:1', minReplicas: 1, minReplicasTimeoutMs: 2000 } },
      { keys: { development: true }, store: { type: 'redis', url: 'redis://127.0.0.1:1', maxEntries: 10 } },
      { keys: { development: true }, store: { type: 'memory', keyPrefix: 'x:' } },
      { keys: { development: true }, store: 'redis://127.0.0.1:1?min_replicas=x' },
      { keys: { development: true }, tenant: 'a b' }, { keys: { development: true }, tenant: BIG }, { keys: { development: true }, tenant: 'a\0' },
      { keys: { development: true }, auditKey: Buffer.alloc(16) }, { keys: { development: true }, auditKey: 'x'.repeat(32) },
      { keys: { development: true }, sessionDefaults: { ttlSeconds: 0 } }, { keys: { development: true }, sessionDefaults: { metadata: {} } },
      { keys: { development: true }, stores: 'memory' },
    ];
    for (const options of cases) {
      await rejectsArgument(Vault.open(options), `open ${JSON.stringify(options, (k, v) => (typeof v === 'string' && v.length > 40 ? `<${v.length}>` : v))?.slice(0, 200)}`, [secret]);
    }
    for (const keys of [{ env: BIG }, { env: 'A\0B' }, { env: '' }, { env: 'A=B' }, { file: BIG }, { file: '/tmp/a\0b' }, { directory: '' }]) {
      await rejectsArgument(Vault.open({ keys }), `keys ${Object.keys(keys)[0]}`);
    }
    // Key sources that cannot load are KEY_UNAVAILABLE, naming the source, never the key.
    for (const keys of [{ directory: '/nonexistent' }, { keyring: BIG }, { keyring: `k1:${secret}\0` }, { keyring: `k1:${secret},k1:${secret}` }]) {
      const e = await rejectsWith(Vault.open({ keys }), 'KEY_UNAVAILABLE', [secret]);
      assert.ok(e.message.length < 300, e.message.length);
    }
  });

  test('forTenant throws a clear error synchronously', () => {
    for (const bad of [undefined, 42, {}, BIG, 'a b', 'a\0', '']) {
      assert.throws(() => vault.forTenant(bad), (e) => e.code === 'INVALID_ARGUMENT' && e.message.length < 200);
    }
  });

  test('methods on a non-Vault receiver throw instead of crashing', async () => {
    for (const method of ['status', 'createSession', 'reveal', 'submit', 'cancel', 'ping']) {
      assert.throws(() => Vault.prototype[method].call({}, id), TypeError);
    }
    assert.throws(() => new Vault());
  });

  after(async () => {
    // The process is healthy: every vault still works, and memory use is sane.
    await healthy(vault);
    await healthy(await openVault('redis'));
    assert.ok(process.memoryUsage().rss < 2 * 1024 ** 3, `rss ${process.memoryUsage().rss}`);
  });
});
