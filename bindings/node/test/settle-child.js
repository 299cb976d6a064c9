'use strict';
// The child process of settle.test.js: runs one scenario against the Redis at
// PCI_VAULT_TEST_REDIS_URL — on its main thread, or in a worker thread with `--worker` — and
// prints one JSON line. It never calls process.exit: the parent checks that the event loop
// ends by itself once nothing is pending, and not before.

const crypto = require('node:crypto');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

const { Vault, keyringEntry, redisCommand } = require('./support');

const SCENARIOS = {
  /** 10,000 calls in flight at once: 5,000 resolve, 5,000 reject with NOT_FOUND. */
  async many(vault) {
    const calls = [];
    for (let i = 0; i < 5_000; i++) {
      calls.push(vault.createSession());
      calls.push(vault.status(crypto.randomBytes(32).toString('base64url')));
    }
    const counts = {};
    for (const r of await Promise.allSettled(calls)) {
      const key = r.status === 'fulfilled' ? 'ok' : r.reason.code;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  },
  /**
   * One call that waits 300 ms on a paused Redis, with nothing else to keep the event loop
   * alive: the pending Promise must.
   */
  async pending(vault, url) {
    const { id } = await vault.createSession();
    const reply = await redisCommand(Number(new URL(url).port), 'CLIENT', 'PAUSE', '300');
    if (!reply.startsWith('+OK')) throw new Error('CLIENT PAUSE failed');
    const started = Date.now();
    const { state } = await vault.status(id);
    return { state, waitedMs: Date.now() - started };
  },
};

async function run({ scenario, url }) {
  const vault = await Vault.open({
    store: { type: 'redis', url, keyPrefix: `settle-${crypto.randomUUID()}:`, timeoutMs: 10_000 },
    keys: { keyring: [keyringEntry()] },
  });
  return SCENARIOS[scenario](vault, url);
}

const job = isMainThread
  ? { scenario: process.argv[2], url: process.env.PCI_VAULT_TEST_REDIS_URL }
  : workerData;
if (isMainThread && process.argv.includes('--worker')) {
  const worker = new Worker(__filename, { workerData: job });
  worker.on('message', (result) => console.log(JSON.stringify({ worker: true, ...result })));
  worker.on('error', (e) => { console.error(e); process.exitCode = 1; });
} else {
  run(job).then(
    (result) => (isMainThread ? console.log(JSON.stringify(result)) : parentPort.postMessage(result)),
    (e) => { console.error(e); process.exitCode = 1; },
  );
}
