'use strict';
// The whole flow (create, submit, reveal; docs/ARCHITECTURE.md) through the binding, on the memory store and on Redis.

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');

const {
  CARD, TEST_CARDS, STORES, Vault, keyringEntry, openVault, storeOptions, rejectsWith, startRedis,
} = require('./support');

for (const store of STORES) {
  describe(`flow on ${store}`, () => {
    test('create, status, submit, reveal once, then ALREADY_REVEALED', async () => {
      const vault = await openVault(store);
      await vault.ping();
      const before = Date.now();
      const ticket = await vault.createSession({ ttlSeconds: 600, metadata: { conversation: 'c-1', order: 'o-7' } });
      assert.match(ticket.id, /^[A-Za-z0-9_-]{43}$/);
      assert.ok(ticket.expiresAt instanceof Date);
      const ttl = ticket.expiresAt.getTime() - before;
      assert.ok(ttl > 595_000 && ttl <= 601_000, `ttl ${ttl}`);

      const pending = await vault.status(ticket.id);
      assert.equal(pending.state, 'pending');
      assert.equal(pending.submittedAt, null);
      assert.equal(pending.attemptsLeft, 5);
      assert.deepEqual(pending.metadata, { conversation: 'c-1', order: 'o-7' });
      assert.deepEqual(pending.fields, ['card_number', 'expiry', 'cvc', 'cardholder_name']);
      assert.equal(pending.expiresAt.getTime(), ticket.expiresAt.getTime());

      const receipt = await vault.submit(ticket.id, CARD);
      assert.match(receipt.pin, /^[0-9]{6}$/);
      assert.equal(receipt.expiresAt.getTime(), ticket.expiresAt.getTime());

      const submitted = await vault.status(ticket.id);
      assert.equal(submitted.state, 'submitted');
      assert.ok(submitted.submittedAt instanceof Date);
      assert.deepEqual(submitted.card, { brand: 'visa', maskedNumber: '424242******4242' });
      const shown = JSON.stringify({ ...submitted, card: null });
      for (const secret of ['4242', '12/34', '123', 'Ada', receipt.pin]) {
        assert.ok(!shown.includes(secret), 'status shows card data beyond the summary');
      }
      assert.equal(pending.card, null);

      const form = await vault.reveal(ticket.id, receipt.pin);
      assert.deepEqual(form.fields, {
        card_number: '4242424242424242', expiry: '12/34', cvc: '123', cardholder_name: 'Ada Lovelace',
      });
      assert.deepEqual(Object.keys(form.fields), ['card_number', 'expiry', 'cvc', 'cardholder_name']);
      assert.deepEqual(form.card, { brand: 'visa', maskedNumber: '424242******4242' });

      const revealed = await vault.status(ticket.id);
      assert.equal(revealed.state, 'revealed');
      assert.equal(revealed.card, null, 'the summary goes with the data');
      await rejectsWith(vault.reveal(ticket.id, receipt.pin), 'ALREADY_REVEALED', [receipt.pin, ticket.id]);
    });

    test('revealBuffers gives Buffers the caller can wipe', async () => {
      const vault = await openVault(store);
      const { id } = await vault.createSession();
      const { pin } = await vault.submit(id, CARD);
      const form = await vault.revealBuffers(id, pin);
      for (const value of Object.values(form.fields)) assert.ok(Buffer.isBuffer(value));
      assert.equal(form.fields.card_number.toString('utf8'), '4242424242424242');
      assert.equal(form.fields.cardholder_name.toString('utf8'), 'Ada Lovelace');
      assert.deepEqual(form.card, { brand: 'visa', maskedNumber: '424242******4242' });
      const number = form.fields.card_number;
      number.fill(0);
      assert.ok(number.every((b) => b === 0));
      assert.equal(form.fields.card_number.length, 16);
    });

    test('submit takes Buffers, which the caller wipes afterwards', async () => {
      const vault = await openVault(store);
      const { id } = await vault.createSession();
      const fields = Object.fromEntries(Object.entries(CARD).map(([k, v]) => [k, Buffer.from(v)]));
      const { pin } = await vault.submit(id, fields);
      for (const value of Object.values(fields)) value.fill(0);
      const form = await vault.reveal(id, pin);
      assert.equal(form.fields.card_number, '4242424242424242');
      assert.equal(form.fields.cvc, '123');
    });

    test('cancel destroys the session; cancelling again succeeds', async () => {
      const vault = await openVault(store);
      const { id } = await vault.createSession();
      const { pin } = await vault.submit(id, CARD);
      await vault.cancel(id);
      assert.equal((await vault.status(id)).state, 'cancelled');
      await vault.cancel(id);
      await rejectsWith(vault.reveal(id, pin), 'CANCELLED');
    });

    test('custom forms, session defaults and PIN length', async () => {
      const vault = await openVault(store, {
        sessionDefaults: { ttlSeconds: 120, pinLength: 8, maxAttempts: 3, fields: ['card_number', 'expiry', 'postcode'] },
      });
      const { id } = await vault.createSession();
      const status = await vault.status(id);
      assert.equal(status.attemptsLeft, 3);
      assert.deepEqual(status.fields, ['card_number', 'expiry', 'postcode']);
      const { pin } = await vault.submit(id, { card_number: '5555555555554444', expiry: '01/2031', postcode: 'SW1A 1AA' });
      assert.match(pin, /^[0-9]{8}$/);
      const form = await vault.reveal(id, pin);
      assert.deepEqual(form.fields, { card_number: '5555555555554444', expiry: '01/31', postcode: 'SW1A 1AA' });
      assert.equal(form.card.brand, 'mastercard');

      // Per-call options win over the defaults.
      const other = await vault.createSession({ fields: ['postcode'], pinLength: 4 });
      const receipt = await vault.submit(other.id, { postcode: 'X1' });
      assert.match(receipt.pin, /^[0-9]{4}$/);
      const noCard = await vault.reveal(other.id, receipt.pin);
      assert.equal(noCard.card, null);
      assert.deepEqual(noCard.fields, { postcode: 'X1' });
    });

    test('every brand of the public test cards round-trips', async () => {
      const vault = await openVault(store);
      for (const card of TEST_CARDS.valid) {
        const { id } = await vault.createSession();
        const cvc = '1234'.slice(0, card.cvc_length);
        const { pin } = await vault.submit(id, { ...CARD, card_number: card.number, cvc });
        const form = await vault.reveal(id, pin);
        assert.equal(form.fields.card_number, card.number);
        assert.equal(form.card.brand, card.brand);
        assert.equal(form.card.maskedNumber, `${card.number.slice(0, 6)}${'*'.repeat(card.number.length - 10)}${card.number.slice(-4)}`);
      }
    });

    test('tenants do not see each other', async () => {
      const vault = await openVault(store, { tenant: 'acme' });
      assert.equal(vault.tenant, 'acme');
      const other = vault.forTenant('globex');
      assert.equal(other.tenant, 'globex');
      const { id } = await vault.createSession();
      const { pin } = await vault.submit(id, CARD);
      await rejectsWith(other.status(id), 'NOT_FOUND');
      await rejectsWith(other.reveal(id, pin), 'NOT_FOUND');
      await rejectsWith(other.cancel(id), 'NOT_FOUND');
      assert.equal((await vault.status(id)).attemptsLeft, 5, 'another tenant used an attempt');
      assert.equal((await vault.reveal(id, pin)).fields.cvc, '123');
    });
  });
}

test('two vaults on one Redis share sessions, as two processes would', async () => {
  const keyring = [keyringEntry('k1')];
  const store = await storeOptions('redis');
  const agent = await Vault.open({ store, keys: { keyring } });
  const server = await Vault.open({ store, keys: { keyring } });
  const { id } = await agent.createSession();
  const { pin } = await server.submit(id, CARD);
  assert.equal((await agent.status(id)).state, 'submitted');
  assert.equal((await agent.reveal(id, pin)).fields.card_number, '4242424242424242');
  await rejectsWith(server.reveal(id, pin), 'ALREADY_REVEALED');
});

test('key rotation: records sealed under the old primary still open', async () => {
  const store = await storeOptions('redis');
  const k1 = keyringEntry('k1');
  const before = await Vault.open({ store, keys: { keyring: [k1] } });
  const { id } = await before.createSession();
  const { pin } = await before.submit(id, CARD);
  const after = await Vault.open({ store, keys: { keyring: [keyringEntry('k2'), k1] } });
  assert.equal((await after.reveal(id, pin)).fields.cvc, '123');
});

test('keys from a keyring text, an environment variable and a file', async (t) => {
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const k = keyringEntry('k1');
  const text = `k1:${k.key.toString('base64')}`;
  const store = await storeOptions('redis');
  const sealer = await Vault.open({ store, keys: { keyring: [k] } });
  const { id } = await sealer.createSession();
  await sealer.submit(id, CARD);

  process.env.PCI_VAULT_NODE_TEST_KEYS = text;
  t.after(() => delete process.env.PCI_VAULT_NODE_TEST_KEYS);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pci-vault-keys-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'keyring'), `# test keyring\n${text}\n`, { mode: 0o600 });
  fs.mkdirSync(path.join(dir, 'mount'));
  fs.writeFileSync(path.join(dir, 'mount', 'k1'), k.key.toString('base64'));
  fs.writeFileSync(path.join(dir, 'mount', 'primary'), 'k1');

  for (const keys of [
    { keyring: text },
    { env: 'PCI_VAULT_NODE_TEST_KEYS' },
    { file: path.join(dir, 'keyring') },
    { directory: path.join(dir, 'mount') },
  ]) {
    const vault = await Vault.open({ store, keys });
    assert.equal((await vault.status(id)).state, 'submitted', JSON.stringify(Object.keys(keys)));
  }
  const dev = await Vault.open({ store, keys: { development: true } });
  await rejectsWith(dev.status(id), 'KEY_UNAVAILABLE');
});

test('storeWarnings reports the unsafe Redis settings found at open', async (t) => {
  assert.deepEqual((await openVault('memory')).storeWarnings, []);
  assert.deepEqual((await openVault('redis')).storeWarnings, []);
  const unsafe = await startRedis(['--save', '3600 1', '--maxmemory-policy', 'allkeys-lru']);
  t.after(() => unsafe.stop());
  const vault = await Vault.open({ store: unsafe.url, keys: { development: true } });
  const warnings = vault.storeWarnings;
  assert.equal(warnings.length, 2, warnings.join('\n'));
  assert.match(warnings[0], /persistence is on/);
  assert.match(warnings[1], /maxmemory-policy is allkeys-lru/);
  assert.deepEqual(vault.forTenant('other').storeWarnings, warnings);
  // The vault works all the same: the warnings are for the operator.
  const { id } = await vault.createSession();
  assert.equal((await vault.status(id)).state, 'pending');
});
