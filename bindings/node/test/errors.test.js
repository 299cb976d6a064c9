'use strict';
// Every stable error code the library produces (`pci_vault::ErrorCode`) is reachable from Node, as an Error
// with the right `code`, `attemptsLeft` for WRONG_PIN, `fields` for VALIDATION_FAILED, and
// a message that repeats no card data, PIN, key or session id.

const { describe, test, after } = require('node:test');
const assert = require('node:assert/strict');

const {
  CARD, ERROR_CODES, STORES, Vault, keyringEntry, openVault, storeOptions, startRedis, rejectsWith,
  redisCommand,
} = require('./support');
const net = require('node:net');

const reached = new Set();
async function expectCode(promise, code, secrets) {
  const error = await rejectsWith(promise, code, secrets);
  reached.add(code);
  return error;
}

after(() => {
  assert.deepEqual([...reached].sort(), [...ERROR_CODES].sort(), 'some error code was never reached');
});

const SECRETS = ['4242424242424242', '4242 4242 4242 4242', 'Ada Lovelace'];

for (const store of STORES) {
  describe(`errors on ${store}`, () => {
    test('NOT_FOUND: unknown, expired, and another tenant\'s session', async () => {
      const vault = await openVault(store);
      const unknown = 'A'.repeat(43);
      await expectCode(vault.status(unknown), 'NOT_FOUND', [unknown]);
      await expectCode(vault.reveal(unknown, '123456'), 'NOT_FOUND', [unknown, '123456']);
      await expectCode(vault.submit(unknown, CARD), 'NOT_FOUND', SECRETS);
      await expectCode(vault.cancel(unknown), 'NOT_FOUND');

      const { id } = await vault.createSession({ ttlSeconds: 1 });
      const { pin } = await vault.submit(id, CARD);
      await new Promise((r) => setTimeout(r, 1_100));
      await expectCode(vault.status(id), 'NOT_FOUND', [id]);
      await expectCode(vault.reveal(id, pin), 'NOT_FOUND', [id, pin]);

      const live = await vault.createSession();
      await expectCode(vault.forTenant('other').status(live.id), 'NOT_FOUND', [live.id]);
    });

    test('ALREADY_SUBMITTED, NOT_SUBMITTED, ALREADY_REVEALED, CANCELLED', async () => {
      const vault = await openVault(store);
      const { id } = await vault.createSession();
      await expectCode(vault.reveal(id, '123456'), 'NOT_SUBMITTED', [id, '123456']);
      const { pin } = await vault.submit(id, CARD);
      await expectCode(vault.submit(id, CARD), 'ALREADY_SUBMITTED', [...SECRETS, id, pin]);
      await vault.reveal(id, pin);
      await expectCode(vault.reveal(id, pin), 'ALREADY_REVEALED', [id, pin]);
      await expectCode(vault.cancel(id), 'ALREADY_REVEALED');

      const cancelled = await vault.createSession();
      await vault.cancel(cancelled.id);
      await expectCode(vault.submit(cancelled.id, CARD), 'CANCELLED', SECRETS);
      await expectCode(vault.reveal(cancelled.id, '123456'), 'CANCELLED');
    });

    test('WRONG_PIN counts down attemptsLeft, then LOCKED for good', async () => {
      const vault = await openVault(store);
      const { id } = await vault.createSession({ maxAttempts: 5 });
      const { pin } = await vault.submit(id, CARD);
      const wrong = pin === '000000' ? '111111' : '000000';
      for (const left of [4, 3, 2, 1]) {
        const error = await expectCode(vault.reveal(id, wrong), 'WRONG_PIN', [pin, wrong, id]);
        assert.equal(error.attemptsLeft, left);
        assert.equal((await vault.status(id)).attemptsLeft, left);
      }
      const locked = await expectCode(vault.reveal(id, wrong), 'LOCKED', [pin, wrong, id]);
      assert.equal(locked.attemptsLeft, undefined);
      await expectCode(vault.reveal(id, pin), 'LOCKED', [pin]);
      await expectCode(vault.cancel(id), 'LOCKED');
      const status = await vault.status(id);
      assert.equal(status.state, 'locked');
      assert.equal(status.attemptsLeft, 0);
    });

    test('VALIDATION_FAILED names each field and reason, never the value', async () => {
      const vault = await openVault(store);
      const { id } = await vault.createSession();
      const error = await expectCode(vault.submit(id, {
        card_number: '4242 4242 4242 4241', expiry: '13/30', cvc: '12345', cardholder_name: 'Ada\u0007',
      }), 'VALIDATION_FAILED', ['4242424242424241', '4242 4242 4242 4241', '12345', '13/30']);
      assert.deepEqual(error.fields, [
        { field: 'card_number', reason: 'luhn' },
        { field: 'expiry', reason: 'month' },
        { field: 'cvc', reason: 'cvc_length' },
        { field: 'cardholder_name', reason: 'characters' },
      ]);
      const missing = await expectCode(vault.submit(id, { card_number: '4242424242424242' }), 'VALIDATION_FAILED', SECRETS);
      assert.deepEqual(missing.fields.map((f) => f.reason), ['required', 'required', 'required']);
      // Nothing was stored: the session still takes a good submission.
      assert.equal((await vault.status(id)).state, 'pending');
      await vault.submit(id, CARD);
    });

    test('INVALID_ARGUMENT: malformed ids and PINs, options out of range, unknown fields', async () => {
      const vault = await openVault(store);
      const { id } = await vault.createSession();
      await expectCode(vault.status('not-an-id'), 'INVALID_ARGUMENT');
      await expectCode(vault.reveal(id, '12ab56'), 'INVALID_ARGUMENT', ['12ab56']);
      await expectCode(vault.reveal(id, '123'), 'INVALID_ARGUMENT');
      await expectCode(vault.createSession({ ttlSeconds: 0 }), 'INVALID_ARGUMENT');
      await expectCode(vault.createSession({ ttlSeconds: 86_401 }), 'INVALID_ARGUMENT');
      await expectCode(vault.createSession({ pinLength: 3 }), 'INVALID_ARGUMENT');
      await expectCode(vault.createSession({ maxAttempts: 11 }), 'INVALID_ARGUMENT');
      await expectCode(vault.createSession({ fields: [] }), 'INVALID_ARGUMENT');
      await expectCode(vault.createSession({ metadata: { note: 'card 4242 4242 4242 4242' } }), 'INVALID_ARGUMENT', SECRETS);
      await expectCode(vault.submit(id, { ...CARD, pin: '1234' }), 'INVALID_ARGUMENT', SECRETS);
      assert.equal((await vault.status(id)).state, 'pending');
    });
  });
}

test('CAPACITY_EXCEEDED when the memory store is full', async () => {
  const vault = await Vault.open({ store: { type: 'memory', maxEntries: 2 }, keys: { keyring: [keyringEntry()] } });
  await vault.createSession();
  await vault.createSession();
  await expectCode(vault.createSession(), 'CAPACITY_EXCEEDED');
});

test('KEY_UNAVAILABLE: a record sealed under a key id this vault lacks; keys that cannot load', async () => {
  const store = await storeOptions('redis');
  const sealer = await Vault.open({ store, keys: { keyring: [keyringEntry('k1')] } });
  const { id } = await sealer.createSession();
  const other = await Vault.open({ store, keys: { keyring: [keyringEntry('k2')] } });
  await expectCode(other.status(id), 'KEY_UNAVAILABLE', [id]);

  delete process.env.PCI_VAULT_NODE_TEST_UNSET;
  await expectCode(Vault.open({ keys: { env: 'PCI_VAULT_NODE_TEST_UNSET' } }), 'KEY_UNAVAILABLE');
  await expectCode(Vault.open({ keys: { file: '/nonexistent/pci-vault/keys' } }), 'KEY_UNAVAILABLE');
  const zeros = Buffer.alloc(32).toString('base64');
  const bad = await expectCode(Vault.open({ keys: { keyring: `k1:${zeros}` } }), 'KEY_UNAVAILABLE', [zeros]);
  assert.match(bad.message, /all zeros/);
  const secret = keyringEntry().key.toString('base64');
  const short = await expectCode(Vault.open({ keys: { keyring: `k1:${secret.slice(0, 40)}` } }), 'KEY_UNAVAILABLE', [secret.slice(0, 40)]);
  assert.match(short.message, /entry 1/);
});

test('INTEGRITY_ERROR: the same key id with other key material', async () => {
  const store = await storeOptions('redis');
  const sealer = await Vault.open({ store, keys: { keyring: [keyringEntry('k1')] } });
  const { id } = await sealer.createSession();
  const { pin } = await sealer.submit(id, CARD);
  const impostor = await Vault.open({ store, keys: { keyring: [keyringEntry('k1')] } });
  await expectCode(impostor.status(id), 'INTEGRITY_ERROR', [id]);
  await expectCode(impostor.reveal(id, pin), 'INTEGRITY_ERROR', [id, pin]);
  // The rightful vault still reveals: the failed attempts changed nothing.
  assert.equal((await sealer.reveal(id, pin)).fields.cvc, '123');
});

test('STORE_UNAVAILABLE: Redis unreachable at open, and gone after open', async () => {
  const redis = await startRedis();
  const vault = await Vault.open({
    store: { type: 'redis', url: redis.url, timeoutMs: 500, connectTimeoutMs: 1_000 },
    keys: { keyring: [keyringEntry()] },
  });
  const { id } = await vault.createSession();
  await redis.stop();
  await expectCode(vault.status(id), 'STORE_UNAVAILABLE', [id]);
  await expectCode(vault.createSession(), 'STORE_UNAVAILABLE');
  await expectCode(vault.ping(), 'STORE_UNAVAILABLE');
  await expectCode(Vault.open({
    store: { type: 'redis', url: redis.url, connectTimeoutMs: 500 }, keys: { development: true },
  }), 'STORE_UNAVAILABLE');
  await expectCode(Vault.open({
    store: 'redis://:s3cret-password@127.0.0.1:1', keys: { development: true },
  }), 'STORE_UNAVAILABLE', ['s3cret-password']);
});

test('STORE_UNAVAILABLE: a store whose writes too few replicas acknowledge', async () => {
  // A single node has no replica: a vault that wants one for every write fails to open,
  // whether it asks in the store object or in the store string.
  const redis = await startRedis();
  try {
    const keys = { keyring: [keyringEntry()] };
    const plain = await Vault.open({ store: redis.url, keys });
    assert.equal((await plain.createSession()).id.length, 43);
    for (const store of [
      { type: 'redis', url: redis.url, minReplicas: 1, minReplicasTimeoutMs: 50 },
      `${redis.url}?min_replicas=1&min_replicas_timeout_ms=50`,
    ]) {
      const e = await expectCode(Vault.open({ store, keys }), 'STORE_UNAVAILABLE');
      assert.match(e.message, /0 of 1 replicas acknowledged/);
    }
  } finally {
    await redis.stop();
  }
});

test('STORE_UNAVAILABLE, not a hang: a server that never answers, a paused Redis', async (t) => {
  // A loopback server that accepts connections and never says a word.
  const sockets = new Set();
  const silent = net.createServer((socket) => { sockets.add(socket); socket.on('error', () => {}); });
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => { for (const s of sockets) s.destroy(); silent.close(); });
  const started = Date.now();
  await expectCode(Vault.open({
    store: { type: 'redis', url: `redis://127.0.0.1:${silent.address().port}`, connectTimeoutMs: 300 },
    keys: { development: true },
  }), 'STORE_UNAVAILABLE');
  assert.ok(Date.now() - started < 10_000, 'open waited far past its connect timeout');

  const redis = await startRedis();
  t.after(() => redis.stop());
  const vault = await Vault.open({ store: { type: 'redis', url: redis.url, timeoutMs: 200 }, keys: { development: true } });
  const { id } = await vault.createSession();
  assert.match(await redisCommand(redis.port, 'CLIENT', 'PAUSE', '1500'), /^\+OK/);
  const error = await expectCode(vault.status(id), 'STORE_UNAVAILABLE', [id]);
  assert.match(error.message, /timed out/);
  await new Promise((r) => setTimeout(r, 1_600));
  assert.equal((await vault.status(id)).state, 'pending');
});
