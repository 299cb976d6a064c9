// Full cycles (createSession -> submit -> reveal, checking the revealed values) through the
// Node binding, in this Node.js process, for a fixed time at a fixed concurrency. Prints
// one JSON object; bench/src (pci-vault-load --target node-memory|node-redis) runs it.
//
//   node bench/node/load.mjs --store memory|redis://… --concurrency 64 --duration 10 --warmup 2
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const { Vault } = require('../../bindings/node');

const argv = process.argv.slice(2);
function arg(name, fallback) {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? fallback : argv[i + 1];
}
const store = arg('store', 'memory');
const concurrency = Number(arg('concurrency', 1));
const duration = Number(arg('duration', 10));
const warmup = Number(arg('warmup', 2));
const ttlSeconds = Number(arg('ttl', 60));

const storeOption = store === 'memory'
  ? { type: 'memory', maxEntries: 50_000_000, maxBytes: 16 * 2 ** 30 }
  : store;
const vault = await Vault.open({
  store: storeOption,
  keys: { keyring: [{ id: 'bench', key: randomBytes(32) }] },
});

const CARD = '4242424242424242';
const fields = { card_number: CARD, expiry: '12/34', cvc: '123', cardholder_name: 'Ada Lovelace' };

async function cycle() {
  const { id } = await vault.createSession({ ttlSeconds });
  const { pin } = await vault.submit(id, fields);
  const form = await vault.reveal(id, pin);
  if (form.fields.card_number !== CARD || form.fields.cvc !== '123') {
    throw new Error('reveal returned other values');
  }
}

async function phase(seconds) {
  const latencies = [];
  let errors = 0;
  let firstError;
  const endAt = performance.now() + seconds * 1000;
  async function worker() {
    while (performance.now() < endAt) {
      const t0 = performance.now();
      try {
        await cycle();
        latencies.push(performance.now() - t0);
      } catch (err) {
        errors += 1;
        firstError ??= err.code ?? String(err);
      }
    }
  }
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { latencies, errors, firstError, elapsed: (performance.now() - started) / 1000 };
}

await phase(warmup);
// The driver reads redis-server's CPU counters at these two marks.
process.stderr.write('measure-start\n');
const cpu0 = process.cpuUsage();
const run = await phase(duration);
const cpu = process.cpuUsage(cpu0);
process.stderr.write('measure-end\n');
const sorted = Float64Array.from(run.latencies).sort();
const at = (q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] : 0);
process.stdout.write(`${JSON.stringify({
  cycles: sorted.length,
  errors: run.errors,
  first_error: run.firstError ?? null,
  seconds: run.elapsed,
  latency_us: { p50: Math.round(at(0.5) * 1000), p99: Math.round(at(0.99) * 1000), max: Math.round(at(1) * 1000) },
  cpu_seconds: (cpu.user + cpu.system) / 1e6,
  node_rss_bytes: process.memoryUsage().rss,
})}\n`);
