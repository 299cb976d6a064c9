'use strict';
// The extension's nodes against the real binding, on the memory store and on Redis: a
// payment link, the customer's submission (by the form server: another Vault on the same
// store), the reveal with the PIN from the chat, and one output per error code.

const { describe, test, before } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const { Vault } = require('@pci-vault/node');
const { redisUrl, freePort } = require('../../../bindings/node/test/support');
const extension = require('../src/module');
const { createPaymentLink } = require('../src/nodes/createPaymentLink');
const { revealCard, REVEAL_OUTPUTS, pinIn } = require('../src/nodes/revealCard');
const { sessionStatus } = require('../src/nodes/sessionStatus');
const { vaultFor } = require('../src/vault');
const { execute } = require('./cognigy');

const CARD = { card_number: '4242 4242 4242 4242', expiry: '12/34', cvc: '123', cardholder_name: 'Ada Lovelace' };
const PAN = '4242424242424242';
const BASE_URL = 'https://pay.example.com';

function keyringText(id = 'k1') {
  return `${id}:${crypto.randomBytes(32).toString('base64')}`;
}

/** Asserts that no clear card data is anywhere in `value`. */
function noCardData(value, where) {
  const text = JSON.stringify(value);
  for (const secret of [PAN, CARD.card_number, '"123"', CARD.cardholder_name]) {
    assert.ok(!text.includes(secret), `${where} holds card data: ${text}`);
  }
}

for (const store of ['memory', 'redis']) {
  describe(`extension on ${store}`, () => {
    let connection;
    let formServer;
    before(async () => {
      const storeUrl = store === 'memory' ? 'memory' : await redisUrl();
      connection = { storeUrl, keyring: keyringText() };
      // The customer's form server: on memory it must be this process's vault; on Redis it
      // is another Vault on the same store with the same keys, as another process would be.
      formServer = store === 'memory'
        ? await vaultFor(connection)
        : await Vault.open({ store: storeUrl, keys: { keyring: connection.keyring } });
    });

    async function newLink(context = {}) {
      const run = await execute(createPaymentLink, {
        config: { connection, publicBaseUrl: `${BASE_URL}/`, ttlSeconds: 600, message: 'Your secure link: {link}', contextKey: 'pciVault' },
        input: { sessionId: 'conversation-1', text: 'I want to pay' },
        context,
      });
      assert.equal(run.output, 'createPaymentLinkCreated');
      return run;
    }

    test('link, status, submission, wrong PIN, reveal with the PIN from the chat, once', async () => {
      const link = await newLink();
      const { id, link: url, state, expiresAt } = link.context.pciVault;
      assert.match(id, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(url, `${BASE_URL}/forms/${id}`);
      assert.equal(state, 'pending');
      assert.ok(Date.parse(expiresAt) > Date.now() + 500_000);
      assert.deepEqual(link.said, [`Your secure link: ${url}`]);
      assert.equal((await formServer.status(id)).metadata.conversation, 'conversation-1');

      const config = { connection, sessionId: id, contextKey: 'pciVault' };
      let run = await execute(sessionStatus, { config, context: link.context });
      assert.equal(run.output, 'sessionStatusPending');
      assert.equal(run.context.pciVault.state, 'pending');
      run = await execute(revealCard, { config: { ...config, pin: '123456' }, context: run.context });
      assert.equal(run.output, 'revealCardNotSubmitted');
      assert.equal(run.context.pciVault.error.code, 'NOT_SUBMITTED');

      // The customer submits on the form server and is shown the PIN.
      const { pin } = await formServer.submit(id, CARD);
      run = await execute(sessionStatus, { config, context: run.context });
      assert.equal(run.output, 'sessionStatusSubmitted');
      assert.equal(run.context.pciVault.attemptsLeft, 5);

      const wrong = pin === '000000' ? '111111' : '000000';
      run = await execute(revealCard, { config: { ...config, pin: `it is ${wrong}` }, input: { text: `it is ${wrong}` }, context: run.context });
      assert.equal(run.output, 'revealCardWrongPin');
      assert.deepEqual(run.context.pciVault.error, { code: 'WRONG_PIN', message: 'wrong PIN; 4 attempt(s) left', attemptsLeft: 4 });

      const text = `sure, my PIN is ${pin.slice(0, 3)} ${pin.slice(3)}`;
      const input = { text };
      run = await execute(revealCard, { config: { ...config, pin: text, storeLocation: 'input', inputKey: 'card' }, input, context: run.context });
      assert.equal(run.output, 'revealCardRevealed');
      assert.deepEqual(run.context.pciVault.card, { brand: 'visa', maskedNumber: '424242******4242' });
      assert.equal(run.context.pciVault.state, 'revealed');
      assert.equal(run.context.pciVault.error, null);
      assert.deepEqual(run.input.card, { card_number: PAN, expiry: '12/34', cvc: '123', cardholder_name: 'Ada Lovelace' });
      assert.deepEqual(run.said, []);
      noCardData(run.context, 'the context');

      run = await execute(revealCard, { config: { ...config, pin }, context: run.context });
      assert.equal(run.output, 'revealCardAlreadyRevealed');
      run = await execute(sessionStatus, { config, context: run.context });
      assert.equal(run.output, 'sessionStatusRevealed');
    });

    test('the full form can go to a context key instead', async () => {
      const { context } = await newLink();
      const { pin } = await formServer.submit(context.pciVault.id, CARD);
      const run = await execute(revealCard, {
        config: { connection, sessionId: context.pciVault.id, pin, storeLocation: 'context', formContextKey: 'paymentForm', contextKey: 'pciVault' },
        context,
      });
      assert.equal(run.output, 'revealCardRevealed');
      assert.equal(run.context.paymentForm.card_number, PAN);
      assert.deepEqual(Object.keys(run.input), []);
    });

    test('every reveal outcome has its own output', async () => {
      const config = (sessionId, pin) => ({ connection, sessionId, pin, contextKey: 'pciVault' });
      const seen = new Map();
      const reveal = async (sessionId, pin, expected, conn = connection) => {
        const run = await execute(revealCard, { config: { ...config(sessionId, pin), connection: conn } });
        assert.equal(run.output, expected, JSON.stringify(run.context));
        seen.set(expected, run.context.pciVault?.error?.code ?? null);
        noCardData(run.context, 'the context');
        return run;
      };

      // Locked after five wrong PINs, and for good.
      const locked = (await newLink()).context.pciVault.id;
      const { pin } = await formServer.submit(locked, CARD);
      const wrong = pin === '000000' ? '111111' : '000000';
      for (let i = 0; i < 4; i++) await reveal(locked, wrong, 'revealCardWrongPin');
      await reveal(locked, wrong, 'revealCardLocked');
      await reveal(locked, pin, 'revealCardLocked');

      const cancelled = (await newLink()).context.pciVault.id;
      await formServer.cancel(cancelled);
      await reveal(cancelled, '123456', 'revealCardCancelled');
      await reveal('A'.repeat(43), '123456', 'revealCardNotFound');
      const pending = (await newLink()).context.pciVault.id;
      await reveal(pending, '123456', 'revealCardNotSubmitted');
      await reveal(pending, 'no digits here', 'revealCardInvalidPin');
      await reveal(pending, '12', 'revealCardInvalidPin');
      await reveal('not-a-session', '123456', 'revealCardInvalidPin');

      // The keys cannot load: KEY_UNAVAILABLE, without the key in the context.
      const badKeys = { storeUrl: connection.storeUrl, keyring: 'k1:not-base64!' };
      const run = await reveal(pending, '123456', 'revealCardKeyUnavailable', badKeys);
      assert.ok(!JSON.stringify(run.context).includes('not-base64!'));

      const revealed = (await newLink()).context.pciVault.id;
      const receipt = await formServer.submit(revealed, CARD);
      await reveal(revealed, receipt.pin, 'revealCardRevealed');
      await reveal(revealed, receipt.pin, 'revealCardAlreadyRevealed');

      if (store === 'redis') {
        // Another key under the same id: the record does not authenticate.
        const impostor = { storeUrl: connection.storeUrl, keyring: keyringText('k1') };
        const sealed = (await newLink()).context.pciVault.id;
        const { pin: sealedPin } = await formServer.submit(sealed, CARD);
        await reveal(sealed, sealedPin, 'revealCardIntegrityError', impostor);
        const dead = { storeUrl: `redis://127.0.0.1:${await freePort()}`, keyring: connection.keyring };
        await reveal(sealed, sealedPin, 'revealCardStoreUnavailable', dead);
        await reveal(sealed, sealedPin, 'revealCardRevealed');
      }
      for (const [output, code] of seen) {
        const declared = REVEAL_OUTPUTS.find(([type]) => type === output);
        assert.equal(declared[2] ?? null, code, output);
      }
    });
  });
}

test('the extension declares its nodes, their outputs and the connection', () => {
  const types = extension.nodes.map((n) => n.type);
  assert.equal(new Set(types).size, types.length, 'node types repeat');
  for (const parent of [createPaymentLink, revealCard, sessionStatus]) {
    assert.ok(types.includes(parent.type));
    assert.equal(typeof parent.function, 'function');
    for (const child of parent.dependencies.children) {
      const descriptor = extension.nodes.find((n) => n.type === child);
      assert.ok(descriptor, `${child} is not declared`);
      assert.equal(descriptor.parentType, parent.type);
    }
    const connectionField = parent.fields.find((f) => f.type === 'connection');
    assert.equal(connectionField.params.connectionType, 'pci-vault');
  }
  // Every code a reveal can answer has an output.
  const codes = REVEAL_OUTPUTS.map(([, , code]) => code);
  for (const code of ['WRONG_PIN', 'LOCKED', 'ALREADY_REVEALED', 'NOT_SUBMITTED', 'CANCELLED', 'NOT_FOUND', 'INVALID_ARGUMENT', 'STORE_UNAVAILABLE', 'KEY_UNAVAILABLE', 'INTEGRITY_ERROR']) {
    assert.ok(codes.includes(code), code);
  }
  assert.deepEqual(extension.connections, [{
    type: 'pci-vault', label: 'PCI Vault store and keys', fields: [{ fieldName: 'storeUrl' }, { fieldName: 'keyring' }],
  }]);
});

test('connection and configuration problems take the failure outputs', async () => {
  for (const connection of [undefined, {}, { storeUrl: 'memory' }, { storeUrl: 42, keyring: keyringText() }]) {
    const run = await execute(createPaymentLink, { config: { connection, publicBaseUrl: BASE_URL } });
    assert.equal(run.output, 'createPaymentLinkFailed');
    assert.equal(run.context.pciVault.error.code, 'INVALID_ARGUMENT');
    const status = await execute(sessionStatus, { config: { connection, sessionId: 'A'.repeat(43) } });
    assert.equal(status.output, 'sessionStatusError');
  }
  const connection = { storeUrl: 'memory', keyring: keyringText() };
  const ttl = await execute(createPaymentLink, { config: { connection, publicBaseUrl: BASE_URL, ttlSeconds: 'soon' } });
  assert.equal(ttl.output, 'createPaymentLinkFailed');
  assert.equal(ttl.context.pciVault.error.code, 'INVALID_ARGUMENT');
  const down = await execute(createPaymentLink, {
    config: { connection: { storeUrl: `redis://127.0.0.1:${await freePort()}`, keyring: keyringText() }, publicBaseUrl: BASE_URL },
  });
  assert.equal(down.output, 'createPaymentLinkFailed');
  assert.equal(down.context.pciVault.error.code, 'STORE_UNAVAILABLE');
  const unknown = await execute(sessionStatus, { config: { connection, sessionId: 'A'.repeat(43) } });
  assert.equal(unknown.output, 'sessionStatusNotFound');
  // An empty message says nothing; a session without a conversation id has no metadata.
  const quiet = await execute(createPaymentLink, { config: { connection, publicBaseUrl: BASE_URL, message: '' } });
  assert.deepEqual(quiet.said, []);
  assert.deepEqual((await (await vaultFor(connection)).status(quiet.context.pciVault.id)).metadata, {});
});

test('the PIN is the first group of 4-12 digits in the message', () => {
  const cases = [
    ['123456', '123456'], ['my pin is 123 456', '123456'], ['PIN: 12-34-56, thanks', '123456'],
    ['  0042  ', '0042'], ['it is 123456789012', '123456789012'], ['no digits', 'no digits'],
    ['12', '12'], ['call 1234567890123 now', 'call 1234567890123 now'], ['first 1234 then 5678', '1234'],
  ];
  for (const [text, pin] of cases) assert.equal(pinIn(text), pin, text);
  assert.equal(pinIn(undefined), '');
});
