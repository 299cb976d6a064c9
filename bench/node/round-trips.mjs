// Store round trips per operation, through the Node binding or through the plain Node peer:
// runs N operations of each kind one after another (creates; create + submit; full cycles;
// create + submit + one wrong PIN), printing `mark NAME` before and `end NAME` after each
// batch and waiting for a line on stdin after each print, so that bench/compare.py can read
// the counters of a proxy in front of Redis between them. One warm-up batch of each kind
// first (script loading, connection set-up).
//
//   node bench/node/round-trips.mjs --impl binding --store redis://127.0.0.1:6391 --per-batch 200
//   node bench/node/round-trips.mjs --impl peer --peer DIR --port 6391 --per-batch 200
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const argv = process.argv.slice(2);
function arg(name, fallback) {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? fallback : argv[i + 1];
}
const impl = arg('impl', 'binding');
const perBatch = Number(arg('per-batch', 200));

const CARD = '4242424242424242';
const wrongOf = (pin) => String((Number(pin[0]) + 1) % 10) + pin.slice(1);

async function openBinding() {
  const require = createRequire(import.meta.url);
  const { Vault } = require('../../bindings/node');
  const vault = await Vault.open({
    store: arg('store'),
    keys: { keyring: [{ id: 'bench', key: randomBytes(32) }] },
  });
  const fields = { card_number: CARD, expiry: '12/34', cvc: '123', cardholder_name: 'Ada Lovelace' };
  return {
    create: async () => (await vault.createSession({ ttlSeconds: 60 })).id,
    submit: async (id) => (await vault.submit(id, fields)).pin,
    reveal: (id, pin) => vault.reveal(id, pin),
    wrongCode: 'WRONG_PIN',
    close: () => {},
  };
}

async function openPeer() {
  const dir = arg('peer');
  const Redis = createRequire(join(dir, 'package.json'))('ioredis');
  const { RedisVault } = await import(pathToFileURL(join(dir, 'lib.mjs')).href);
  const client = new Redis({ host: '127.0.0.1', port: Number(arg('port')), lazyConnect: true });
  await client.connect();
  const vault = new RedisVault(client, { masterKey: randomBytes(32), pinKey: randomBytes(32) });
  const fields = { pan: CARD, expiry: '12/34', cvv: '123', name: 'ADA LOVELACE' };
  return {
    create: async () => (await vault.createSession(60)).id,
    submit: async (id) => (await vault.submit(id, fields)).pin,
    reveal: (id, pin) => vault.reveal(id, pin),
    wrongCode: 'BAD_PIN',
    close: () => client.quit(),
  };
}

const vault = impl === 'peer' ? await openPeer() : await openBinding();

async function batch(kind) {
  const id = await vault.create();
  if (kind === 'create') return;
  const pin = await vault.submit(id);
  if (kind === 'submit') return;
  if (kind === 'reveal') {
    await vault.reveal(id, pin);
    return;
  }
  try {
    await vault.reveal(id, wrongOf(pin));
  } catch (err) {
    if (err.code === vault.wrongCode) return;
    throw err;
  }
  throw new Error('a wrong PIN revealed the form');
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function handshake(line) {
  process.stdout.write(`${line}\n`);
  await lines.next();
}

const kinds = ['create', 'submit', 'reveal', 'reveal-wrong'];
for (const kind of kinds) await batch(kind);
for (const kind of kinds) {
  await handshake(`mark ${kind}`);
  for (let i = 0; i < perBatch; i++) await batch(kind);
  await handshake(`end ${kind}`);
}
await vault.close();
process.exit(0);
