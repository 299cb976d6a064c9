'use strict';
// A key provider written in JavaScript (`keys: { provider }`): the whole flow on memory and
// Redis with the provider's wraps; a slow, throwing or rejecting provider answers
// KEY_UNAVAILABLE within its timeout, and the event loop keeps running meanwhile.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const { CARD, STORES, Vault, rejectsWith, storeOptions } = require('./support');

/**
 * An HSM stand-in: AES-256-GCM under a key this object keeps, with the associated data
 * bound, written as a class so that its methods use `this`. Records what it is given.
 */
class GcmProvider {
  constructor(keyId = 'js-kek-1') {
    this.keyId = keyId;
    this.kek = crypto.randomBytes(32);
    this.given = [];
  }

  async wrap(dataKey, aad) {
    assert.ok(Buffer.isBuffer(dataKey) && Buffer.isBuffer(aad));
    this.given.push({ op: 'wrap', dataKeyLength: dataKey.length, aad: Buffer.from(aad) });
    const iv = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.kek, iv);
    cipher.setAAD(aad);
    const sealed = Buffer.concat([cipher.update(dataKey), cipher.final()]);
    dataKey.fill(0);
    return { keyId: this.keyId, ciphertext: Buffer.concat([iv, sealed, cipher.getAuthTag()]) };
  }

  async unwrap({ keyId, ciphertext }, aad) {
    this.given.push({ op: 'unwrap', aad: Buffer.from(aad) });
    if (keyId !== this.keyId) throw new Error(`unknown key ${keyId}`);
    const decipher = crypto.createDecipheriv('aes-256-gcm', this.kek, ciphertext.subarray(0, 12));
    decipher.setAAD(aad);
    decipher.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
    try {
      return Buffer.concat([decipher.update(ciphertext.subarray(12, ciphertext.length - 16)), decipher.final()]);
    } catch {
      return null; // does not authenticate: INTEGRITY_ERROR
    }
  }
}

const INTERVAL_MS = 10;
const MAX_GAP_MS = 250;

/** Runs `work` while a timer ticks; returns the largest gap between ticks. */
async function watchTimer(work) {
  const ticks = [];
  const timer = setInterval(() => ticks.push(performance.now()), INTERVAL_MS);
  const start = performance.now();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  const times = [start, ...ticks, performance.now()];
  let maxGap = 0;
  for (let i = 1; i < times.length; i++) maxGap = Math.max(maxGap, times[i] - times[i - 1]);
  return { maxGap, ticks: ticks.length };
}

for (const store of STORES) {
  test(`the whole flow with a JavaScript key provider (${store})`, async () => {
    const provider = new GcmProvider();
    const vault = await Vault.open({ store: await storeOptions(store), keys: { provider } });
    const { id } = await vault.createSession({ metadata: { conversation: 'c-1' } });
    const { pin } = await vault.submit(id, CARD);
    assert.equal((await vault.status(id)).state, 'submitted');
    const form = await vault.reveal(id, pin);
    assert.equal(form.fields.card_number, '4242424242424242');
    assert.equal(form.card.maskedNumber, '424242******4242');
    await rejectsWith(vault.reveal(id, pin), 'ALREADY_REVEALED');

    // The provider saw 32-byte data keys and associated data, never the card or the PIN.
    const wraps = provider.given.filter((g) => g.op === 'wrap');
    assert.ok(wraps.length >= 1);
    assert.ok(wraps.every((g) => g.dataKeyLength === 32));
    assert.ok(provider.given.some((g) => g.op === 'unwrap'));
    // The vault counted each of those wraps under the provider's key id, for every tenant.
    const usage = [{ keyId: 'js-kek-1', wraps: wraps.length, rotationDue: false }];
    assert.deepEqual(vault.keyUsage(), usage);
    assert.deepEqual(vault.forTenant('acme').keyUsage(), usage);
    for (const { aad } of provider.given) {
      for (const secret of ['4242424242424242', CARD.card_number, pin]) {
        assert.ok(!aad.includes(secret), 'the associated data holds a secret');
      }
    }
  });
}

test('a record names its key: another JavaScript provider answers KEY_UNAVAILABLE', async () => {
  const first = new GcmProvider('js-kek-1');
  const opts = await storeOptions('redis');
  const vault = await Vault.open({ store: opts, keys: { provider: first } });
  const { id } = await vault.createSession();
  const stranger = new GcmProvider('js-kek-2');
  const other = await Vault.open({ store: opts, keys: { provider: stranger } });
  await rejectsWith(other.status(id), 'KEY_UNAVAILABLE', ['unknown key']);
  // The same key id with other key material: the ciphertext does not authenticate.
  const impostor = new GcmProvider('js-kek-1');
  const third = await Vault.open({ store: opts, keys: { provider: impostor } });
  await rejectsWith(third.status(id), 'INTEGRITY_ERROR');
  assert.equal((await vault.status(id)).state, 'pending');
});

test('a slow provider is KEY_UNAVAILABLE after its timeout, and the event loop keeps running', async () => {
  const slow = {
    wrap: () => new Promise((resolve) => setTimeout(() => resolve({ keyId: 'k', ciphertext: Buffer.alloc(8) }), 3000).unref()),
    unwrap: () => new Promise(() => {}),
  };
  const vault = await Vault.open({ store: 'memory', keys: { provider: slow, timeoutMs: 200 } });
  let error;
  const started = performance.now();
  const { maxGap, ticks } = await watchTimer(async () => {
    error = await rejectsWith(vault.createSession(), 'KEY_UNAVAILABLE');
  });
  const took = performance.now() - started;
  assert.match(error.message, /did not settle within 200 ms/);
  assert.ok(took >= 190 && took < 2000, `took ${took} ms`);
  assert.ok(maxGap < MAX_GAP_MS, `the event loop stalled for ${maxGap} ms`);
  assert.ok(ticks >= 5, `only ${ticks} ticks`);
});

test('a throwing or rejecting provider is KEY_UNAVAILABLE and its message is not kept', async () => {
  const secret = 'kms-session-token-hunter2';
  for (const provider of [
    { wrap: () => { throw new Error(secret); }, unwrap: async () => null },
    { wrap: async () => { throw new Error(secret); }, unwrap: async () => null },
    { wrap: () => Promise.reject(secret), unwrap: async () => null },
    { wrap: async () => ({ keyId: 'not a valid id!', ciphertext: Buffer.alloc(8) }), unwrap: async () => null },
    { wrap: async () => ({ keyId: 'k', ciphertext: Buffer.alloc(2048) }), unwrap: async () => null },
    { wrap: async () => 'not an object', unwrap: async () => null },
    { wrap: () => null, unwrap: async () => null },
  ]) {
    const vault = await Vault.open({ store: 'memory', keys: { provider } });
    const { maxGap } = await watchTimer(() => rejectsWith(vault.createSession(), 'KEY_UNAVAILABLE', [secret]));
    assert.ok(maxGap < MAX_GAP_MS, `the event loop stalled for ${maxGap} ms`);
  }
});

test('unwrap: only null is INTEGRITY_ERROR; undefined, a throw, another value, a wrong length are KEY_UNAVAILABLE', async () => {
  const good = new GcmProvider();
  for (const [unwrap, code] of [
    [async () => null, 'INTEGRITY_ERROR'],
    [() => null, 'INTEGRITY_ERROR'],
    // A forgotten `return` is a provider bug, not tampering: it must not point operators
    // at INTEGRITY_ERROR.
    [async (w, a) => { await good.unwrap(w, a); }, 'KEY_UNAVAILABLE'],
    [() => undefined, 'KEY_UNAVAILABLE'],
    [async () => { throw new Error('hsm down'); }, 'KEY_UNAVAILABLE'],
    [async () => Buffer.alloc(31, 1), 'KEY_UNAVAILABLE'],
    [async () => 'a string', 'KEY_UNAVAILABLE'],
    [async () => 0, 'KEY_UNAVAILABLE'],
    [async () => false, 'KEY_UNAVAILABLE'],
    [async () => ({ key: Buffer.alloc(32, 1) }), 'KEY_UNAVAILABLE'],
  ]) {
    const vault = await Vault.open({
      store: 'memory',
      keys: { provider: { wrap: (k, a) => good.wrap(k, a), unwrap } },
    });
    const { id } = await vault.createSession();
    await rejectsWith(vault.submit(id, CARD), code, [CARD.card_number, CARD.cvc]);
  }
});

test('the data key the provider returns is wiped after the vault copied it', async () => {
  const inner = new GcmProvider();
  const returned = [];
  const vault = await Vault.open({
    store: 'memory',
    keys: {
      provider: {
        wrap: (k, a) => inner.wrap(k, a),
        unwrap: async (w, a) => { const key = await inner.unwrap(w, a); returned.push(key); return key; },
      },
    },
  });
  const { id } = await vault.createSession();
  const { pin } = await vault.submit(id, CARD);
  await vault.reveal(id, pin);
  assert.ok(returned.length >= 1);
  for (const key of returned) assert.ok(key.every((b) => b === 0), 'a returned data key was not wiped');
});

test('a data key that unwrap resolves after the timeout is wiped too', async () => {
  const inner = new GcmProvider();
  const late = [];
  let slow = false;
  const vault = await Vault.open({
    store: 'memory',
    keys: {
      timeoutMs: 100,
      provider: {
        wrap: (k, a) => inner.wrap(k, a),
        unwrap: async (w, a) => {
          const key = await inner.unwrap(w, a);
          if (!slow) return key;
          late.push(key);
          await new Promise((r) => setTimeout(r, 300));
          return key;
        },
      },
    },
  });
  const { id } = await vault.createSession();
  slow = true;
  await rejectsWith(vault.status(id), 'KEY_UNAVAILABLE');
  assert.equal(late.length, 1);
  const [key] = late;
  assert.equal(key.length, 32);
  assert.ok(key.some((b) => b !== 0), 'the key was wiped before unwrap resolved');
  // The vault gave up waiting; the Buffer resolved afterwards must still be wiped.
  for (let i = 0; i < 100 && key.some((b) => b !== 0); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(key.every((b) => b === 0), 'a data key resolved after the timeout was not wiped');
});

test('provider options are checked', async () => {
  const provider = new GcmProvider();
  for (const [keys, code] of [
    [{ provider: { wrap: provider.wrap } }, 'INVALID_ARGUMENT'],
    [{ provider: 'kms' }, 'INVALID_ARGUMENT'],
    [{ provider, timeoutMs: 0 }, 'INVALID_ARGUMENT'],
    [{ provider, timeoutMs: 60001 }, 'INVALID_ARGUMENT'],
    [{ development: true, timeoutMs: 100 }, 'INVALID_ARGUMENT'],
    [{ provider, development: true }, 'INVALID_ARGUMENT'],
    [{ source: 'vault:hunter2' }, 'INVALID_ARGUMENT'],
  ]) {
    await rejectsWith(Vault.open({ store: 'memory', keys }), code, ['hunter2']);
  }
  const vault = await Vault.open({ store: 'memory', keys: { source: 'development' } });
  assert.ok((await vault.createSession()).id);
});
