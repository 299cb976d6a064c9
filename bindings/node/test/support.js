'use strict';
// Shared helpers of the binding's tests: vaults on each store, a throwaway redis-server,
// and assertions on the errors the binding rejects with.

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const { Vault } = require('..');

/** A valid card (public test number) and the rest of the default form. */
const CARD = Object.freeze({
  card_number: '4242 4242 4242 4242',
  expiry: '12/34',
  cvc: '123',
  cardholder_name: 'Ada Lovelace',
});

/** The public test cards the core's tests use, per brand. */
const TEST_CARDS = JSON.parse(
  fs.readFileSync(path.join(__dirname, '../../../vault/tests/data/test-cards.json'), 'utf8'),
);

/** Every error code the library produces (`pci_vault::ErrorCode`). */
const ERROR_CODES = [
  'NOT_FOUND', 'ALREADY_SUBMITTED', 'NOT_SUBMITTED', 'ALREADY_REVEALED', 'CANCELLED', 'LOCKED',
  'WRONG_PIN', 'VALIDATION_FAILED', 'INVALID_ARGUMENT', 'STORE_UNAVAILABLE', 'KEY_UNAVAILABLE',
  'INTEGRITY_ERROR', 'CAPACITY_EXCEEDED',
];

/**
 * The arguments every test launcher of the repository starts redis-server with (loopback,
 * no persistence, noeviction): testkit/redis-flags.json, shared with the Rust and Python
 * launchers.
 */
const REDIS_FLAGS = JSON.parse(
  fs.readFileSync(path.join(__dirname, '../../../testkit/redis-flags.json'), 'utf8'),
).args;

/** A fresh inline keyring entry. */
function keyringEntry(id = 'k1') {
  return { id, key: crypto.randomBytes(32) };
}

/** A free TCP port on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a redis-server of our own on a free loopback port (REDIS_FLAGS, then `extraArgs`) and returns its URL and a stop function. Stopped by PID; also stopped
 * when the process exits.
 */
async function startRedis(extraArgs = []) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pci-vault-node-redis-'));
  const child = spawn('redis-server', [
    '--port', String(port), ...REDIS_FLAGS, '--dir', dir, ...extraArgs,
  ], { stdio: 'ignore' });
  // The server must not keep this process alive; it is stopped on exit below.
  child.unref();
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const kill = () => { try { process.kill(child.pid); } catch { /* already gone */ } };
  process.once('exit', kill);
  const spawnFailed = new Promise((_, reject) => child.once('error', (e) => reject(
    new Error(`cannot start redis-server (${e.code}); install it or set PCI_VAULT_TEST_REDIS_URL`),
  )));
  const ready = (async () => {
    for (let i = 0; i < 200; i++) {
      if (await canConnect(port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`redis-server did not start on port ${port}`);
  })();
  await Promise.race([ready, spawnFailed]);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      child.ref(); // keep this process alive until the server has exited
      kill();
      await exited;
      process.removeListener('exit', kill);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

let sharedRedis;
/**
 * The Redis the tests share: PCI_VAULT_TEST_REDIS_URL (scripts/suites/40-node.sh starts one),
 * or else one started for this test file.
 */
async function redisUrl() {
  if (process.env.PCI_VAULT_TEST_REDIS_URL) return process.env.PCI_VAULT_TEST_REDIS_URL;
  sharedRedis ??= startRedis();
  return (await sharedRedis).url;
}

/** Vault options for `store` ('memory' or 'redis'), each test on its own key prefix. */
async function storeOptions(store) {
  if (store === 'memory') return 'memory';
  return { type: 'redis', url: await redisUrl(), keyPrefix: `test-${crypto.randomUUID()}:` };
}

/** Opens a vault on `store` with a fresh key; `extra` overrides options. */
async function openVault(store, extra = {}) {
  return Vault.open({ store: await storeOptions(store), keys: { keyring: [keyringEntry()] }, ...extra });
}

/**
 * Asserts that `promise` rejects with an Error whose `code` is `code`, and that its message
 * repeats none of `secrets`. Returns the error.
 */
async function rejectsWith(promise, code, secrets = []) {
  let error;
  await assert.rejects(promise, (e) => { error = e; return true; });
  assert.ok(error instanceof Error, `not an Error: ${error}`);
  assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
  assert.ok(typeof error.message === 'string' && error.message.length > 0);
  for (const secret of secrets) {
    for (const text of [error.message, String(error.stack), JSON.stringify(error)]) {
      assert.ok(!text.includes(secret), `error text repeats a secret: ${text}`);
    }
  }
  return error;
}

/** Sends one command to the Redis on 127.0.0.1:`port` and resolves to its raw reply. */
function redisCommand(port, ...args) {
  const request = `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    socket.once('data', (reply) => { socket.destroy(); resolve(reply.toString('latin1')); });
    socket.once('error', reject);
  });
}

const STORES = ['memory', 'redis'];

module.exports = {
  CARD, TEST_CARDS, ERROR_CODES, STORES, Vault, keyringEntry, openVault, storeOptions, startRedis,
  redisUrl, rejectsWith, redisCommand, freePort,
};
