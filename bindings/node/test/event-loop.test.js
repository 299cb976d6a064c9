'use strict';
// The event loop never waits on the store: operations waiting on Redis run on the binding's
// tokio runtime, and memory-store operations, which complete at once, take microseconds.
// A setInterval timer keeps firing on time while 1,000 operations are in flight.

const { test } = require('node:test');
const assert = require('node:assert/strict');

const { CARD, Vault, keyringEntry, openVault, startRedis, redisCommand } = require('./support');

const INTERVAL_MS = 10;
// Generous for a shared 2-core machine; a blocked event loop shows a gap as long as the
// whole wait.
const MAX_GAP_MS = 250;

/**
 * Runs `work` while a setInterval timer ticks; returns the largest gap between ticks (the
 * window's start and end count as ticks), how many ticks there were and how long it took.
 */
async function watchTimer(work) {
  const ticks = [];
  const timer = setInterval(() => ticks.push(performance.now()), INTERVAL_MS);
  const start = performance.now();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  const end = performance.now();
  const times = [start, ...ticks, end];
  let maxGap = 0;
  for (let i = 1; i < times.length; i++) maxGap = Math.max(maxGap, times[i] - times[i - 1]);
  return { maxGap, ticks: ticks.length, window: end - start };
}

test('the watcher sees a blocked event loop (so the checks below can fail)', async () => {
  const { maxGap } = await watchTimer(async () => {
    await new Promise((r) => setTimeout(r, 20));
    const until = performance.now() + 400;
    while (performance.now() < until) { /* block the JavaScript thread */ }
    await new Promise((r) => setTimeout(r, 20));
  });
  assert.ok(maxGap >= 390, `gap ${maxGap}`);
});

test('a timer fires on time while 1,000 operations wait on a paused Redis', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const vault = await Vault.open({
    store: { type: 'redis', url: redis.url, timeoutMs: 10_000 },
    keys: { keyring: [keyringEntry()] },
  });
  const sessions = await Promise.all(Array.from({ length: 1_000 }, () => vault.createSession()));
  // Redis answers nobody for 800 ms: every submit below stays in flight that long, waiting
  // in the binding, while the JavaScript thread must stay free for the timer.
  assert.match(await redisCommand(redis.port, 'CLIENT', 'PAUSE', '800'), /^\+OK/);
  let settled = 0;
  const { maxGap, ticks, window } = await watchTimer(async () => {
    const receipts = await Promise.all(sessions.map(({ id }) => vault.submit(id, CARD).finally(() => { settled++; })));
    assert.equal(receipts.length, 1_000);
  });
  assert.equal(settled, 1_000);
  assert.ok(window >= 700, `the operations did not wait on the pause (${window.toFixed(0)} ms)`);
  assert.ok(maxGap < MAX_GAP_MS, `the timer stalled for ${maxGap.toFixed(1)} ms in ${window.toFixed(0)} ms`);
  const expected = window / INTERVAL_MS;
  assert.ok(ticks >= expected * 0.4, `${ticks} ticks in ${window.toFixed(0)} ms`);
  t.diagnostic(`redis: 1,000 submits in flight for ${window.toFixed(0)} ms; ${ticks} ticks of ${INTERVAL_MS} ms; largest gap ${maxGap.toFixed(1)} ms`);
  const { pin } = await vault.submit((await vault.createSession()).id, CARD);
  assert.match(pin, /^[0-9]{6}$/);
});

test('a timer keeps firing through rounds of 1,000 concurrent calls (memory)', async (t) => {
  const vault = await openVault('memory');
  let rounds = 0;
  const { maxGap, ticks, window } = await watchTimer(async () => {
    const started = performance.now();
    while (performance.now() - started < 600 && rounds < 50) {
      rounds++;
      const sessions = await Promise.all(Array.from({ length: 1_000 }, () => vault.createSession()));
      const receipts = await Promise.all(sessions.map(({ id }) => vault.submit(id, CARD)));
      const forms = await Promise.all(sessions.map(({ id }, i) => vault.reveal(id, receipts[i].pin)));
      assert.ok(forms.every((f) => f.fields.cvc === '123'));
      // Memory-store Promises settle at once, so awaiting them never gives the event loop
      // a turn: like any host, this one lets it run between bursts of requests.
      await new Promise((resolve) => setImmediate(resolve));
    }
  });
  // Here the JavaScript thread does the memory store's work itself (3,000 calls a round,
  // microseconds each), so only the largest gap is judged: a round must not hold up the
  // timer for long.
  assert.ok(maxGap < MAX_GAP_MS, `the timer stalled for ${maxGap.toFixed(1)} ms`);
  t.diagnostic(`memory: ${rounds} rounds of 3,000 calls in ${window.toFixed(0)} ms; ${ticks} ticks; largest gap ${maxGap.toFixed(1)} ms`);
});
