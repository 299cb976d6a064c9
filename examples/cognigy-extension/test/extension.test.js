'use strict';
// The extension's nodes against a real deployment: a payment link, the customer's
// submission (by the form server: another Vault on the same Redis, with the same keys),
// the reveal with the PIN from the chat, and one output per error code. The file runs once
// per transport (PCI_VAULT_COGNIGY_TRANSPORT): `in-process` (the native binding, the
// default) and `server` (a real pci-vault-server on the same Redis, through its agent
// API); the nodes must behave the same through both.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const { Vault } = require('@pci-vault/node');
const { redisUrl, freePort } = require('../../../bindings/node/test/support');
const extension = require('../src/module').default;
const { createPaymentLink } = require('../src/nodes/createPaymentLink');
const { revealCard, REVEAL_OUTPUTS, pinIn } = require('../src/nodes/revealCard');
const { sessionStatus } = require('../src/nodes/sessionStatus');
const { vaultFor } = require('../src/vault');
const { execute } = require('./cognigy');
const { startServer, PUBLIC_URL } = require('./server');

const TRANSPORT = process.env.PCI_VAULT_COGNIGY_TRANSPORT || 'in-process';
assert.ok(['in-process', 'server'].includes(TRANSPORT), `unknown transport ${TRANSPORT}`);

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

const servers = [];

/** A connection of TRANSPORT to the vault on `storeUrl` with `keyring` (a server of its own for `server`). */
async function connectionTo(storeUrl, keyring) {
  if (TRANSPORT === 'in-process') return { transport: 'in-process', storeUrl, keyring };
  const apiKey = crypto.randomBytes(24).toString('hex');
  const server = await startServer({ storeUrl, keyring, apiKey });
  servers.push(server);
  return { transport: 'server', serverUrl: server.url, apiKey };
}

/**
 * The deployment every test uses: the connection, the form server, and connections that
 * fail in the ways this transport can fail.
 */
const env = {};
before(async () => {
  const storeUrl = await redisUrl();
  const keyring = keyringText();
  env.connection = await connectionTo(storeUrl, keyring);
  // The customer's form server: another process on the same store with the same keys.
  env.formServer = await Vault.open({ store: storeUrl, keys: { keyring } });
  // The same store under other keys: a record does not authenticate.
  env.impostor = await connectionTo(storeUrl, keyringText('k1'));
  const deadPort = await freePort();
  if (TRANSPORT === 'in-process') {
    env.unreachable = { transport: 'in-process', storeUrl: `redis://127.0.0.1:${deadPort}`, keyring };
    // Keys that cannot load: KEY_UNAVAILABLE.
    env.misconfigured = { connection: { transport: 'in-process', storeUrl, keyring: 'k1:not-base64!' }, secret: 'not-base64!', output: 'revealCardKeyUnavailable', code: 'KEY_UNAVAILABLE' };
  } else {
    env.unreachable = { transport: 'server', serverUrl: `http://127.0.0.1:${deadPort}`, apiKey: env.connection.apiKey };
    // An API key the server does not know: UNAUTHORIZED, an "other" error.
    const apiKey = crypto.randomBytes(24).toString('hex');
    env.misconfigured = { connection: { ...env.connection, apiKey }, secret: apiKey, output: 'revealCardError', code: 'UNAUTHORIZED' };
  }
});
after(async () => {
  for (const server of servers) await server.stop();
});

describe(`extension, ${TRANSPORT} transport, on Redis`, () => {
  let connection;
  let formServer;
  before(() => {
    ({ connection, formServer } = env);
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
    assert.equal(run.context.pciVault.card, null);
    run = await execute(revealCard, { config: { ...config, pin: '123456' }, context: run.context });
    assert.equal(run.output, 'revealCardNotSubmitted');
    assert.equal(run.context.pciVault.error.code, 'NOT_SUBMITTED');

    // The customer submits on the form server and is shown the PIN.
    const { pin } = await formServer.submit(id, CARD);
    run = await execute(sessionStatus, { config, context: run.context });
    assert.equal(run.output, 'sessionStatusSubmitted');
    assert.equal(run.context.pciVault.attemptsLeft, 5);
    // The card to confirm with the customer before the PIN: brand and masked number only.
    assert.deepEqual(run.context.pciVault.card, { brand: 'visa', maskedNumber: '424242******4242' });
    noCardData(run.context, 'the status context');

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
    assert.equal(run.context.pciVault.card, null);
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

    // A connection that cannot work (keys that do not load; an API key the server does not
    // know): its own output, without the secret in the context.
    const { misconfigured } = env;
    const run = await reveal(pending, '123456', misconfigured.output, misconfigured.connection);
    assert.equal(run.context.pciVault.error.code, misconfigured.code);
    assert.ok(!JSON.stringify(run.context).includes(misconfigured.secret));

    const revealed = (await newLink()).context.pciVault.id;
    const receipt = await formServer.submit(revealed, CARD);
    await reveal(revealed, receipt.pin, 'revealCardRevealed');
    await reveal(revealed, receipt.pin, 'revealCardAlreadyRevealed');

    // Another key under the same id: the record does not authenticate.
    const sealed = (await newLink()).context.pciVault.id;
    const { pin: sealedPin } = await formServer.submit(sealed, CARD);
    await reveal(sealed, sealedPin, 'revealCardIntegrityError', env.impostor);
    await reveal(sealed, sealedPin, 'revealCardStoreUnavailable', env.unreachable);
    await reveal(sealed, sealedPin, 'revealCardRevealed');
    // Each output was taken for its own code; "Other error" for a code without one.
    for (const [output, code] of seen) {
      const declared = REVEAL_OUTPUTS.find(([type]) => type === output);
      if (declared[2] === undefined) assert.ok(!REVEAL_OUTPUTS.some(([, , c]) => c === code), output);
      else assert.equal(declared[2] ?? null, code, output);
    }
  });
});

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
    type: 'pci-vault',
    label: 'PCI Vault',
    fields: ['transport', 'storeUrl', 'keyring', 'serverUrl', 'apiKey'].map((fieldName) => ({ fieldName })),
  }]);
});

test('the package exports the extension as default, as Cognigy reads it', () => {
  const module = require('../src/module');
  assert.equal(module.__esModule, true);
  assert.deepEqual(Object.keys(module), ['default']);
  assert.ok(Array.isArray(module.default.nodes) && module.default.nodes.length > 3);
});

test('connection and configuration problems take the failure outputs', async () => {
  const { connection } = env;
  const bad = [
    undefined, {}, { transport: 'carrier pigeon', storeUrl: 'redis://127.0.0.1:6379', keyring: keyringText() },
    { storeUrl: 42, keyring: keyringText() },
    { transport: 'server', serverUrl: 'https://vault.example.com' },
    { transport: 'server', serverUrl: 'http://vault.example.com', apiKey: 'a'.repeat(32) },
    { transport: 'server', serverUrl: 'https://user:password@vault.example.com', apiKey: 'a'.repeat(32) },
    { transport: 'server', serverUrl: 'not a url', apiKey: 'a'.repeat(32) },
    { transport: 'server', serverUrl: 'https://vault.example.com', apiKey: 'short' },
  ];
  for (const c of bad) {
    const run = await execute(createPaymentLink, { config: { connection: c, publicBaseUrl: BASE_URL } });
    assert.equal(run.output, 'createPaymentLinkFailed', JSON.stringify(c));
    assert.equal(run.context.pciVault.error.code, 'INVALID_ARGUMENT', JSON.stringify(c));
    assert.ok(!run.context.pciVault.error.message.includes('password'));
    const status = await execute(sessionStatus, { config: { connection: c, sessionId: 'A'.repeat(43) } });
    assert.equal(status.output, 'sessionStatusError');
  }
  const ttl = await execute(createPaymentLink, { config: { connection, publicBaseUrl: BASE_URL, ttlSeconds: 'soon' } });
  assert.equal(ttl.output, 'createPaymentLinkFailed');
  assert.equal(ttl.context.pciVault.error.code, 'INVALID_ARGUMENT');
  const down = await execute(createPaymentLink, { config: { connection: env.unreachable, publicBaseUrl: BASE_URL } });
  assert.equal(down.output, 'createPaymentLinkFailed');
  assert.equal(down.context.pciVault.error.code, 'STORE_UNAVAILABLE');
  const unknown = await execute(sessionStatus, { config: { connection, sessionId: 'A'.repeat(43) } });
  assert.equal(unknown.output, 'sessionStatusNotFound');
  const malformed = await execute(sessionStatus, { config: { connection, sessionId: '../../healthz' } });
  assert.equal(malformed.output, 'sessionStatusError');
  assert.equal(malformed.context.pciVault.error.code, 'INVALID_ARGUMENT');
  // An empty message says nothing; a session without a conversation id has no metadata.
  const quiet = await execute(createPaymentLink, { config: { connection, publicBaseUrl: BASE_URL, message: '' } });
  assert.deepEqual(quiet.said, []);
  assert.deepEqual((await env.formServer.status(quiet.context.pciVault.id)).metadata, {});
  // Without a form server URL: the server's own link, or (in-process) no link at all.
  const linkless = await execute(createPaymentLink, { config: { connection, message: '' } });
  if (TRANSPORT === 'server') {
    assert.equal(linkless.output, 'createPaymentLinkCreated');
    assert.equal(linkless.context.pciVault.link, `${PUBLIC_URL}/forms/${linkless.context.pciVault.id}`);
  } else {
    assert.equal(linkless.output, 'createPaymentLinkFailed');
    assert.equal(linkless.context.pciVault.error.code, 'INVALID_ARGUMENT');
  }
});

test('a connection naming the memory store is refused, with the reason', async () => {
  for (const storeUrl of ['memory', ' Memory ']) {
    const connection = { transport: 'in-process', storeUrl, keyring: keyringText() };
    const run = await execute(createPaymentLink, { config: { connection, publicBaseUrl: BASE_URL } });
    assert.equal(run.output, 'createPaymentLinkFailed');
    assert.equal(run.context.pciVault.error.code, 'INVALID_ARGUMENT');
    assert.match(run.context.pciVault.error.message, /memory store .* no form server can reach it/);
    await assert.rejects(vaultFor(connection), { code: 'INVALID_ARGUMENT' });
  }
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
