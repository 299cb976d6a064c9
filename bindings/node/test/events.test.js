'use strict';
// vault.watch(id): a session's events as an async iterator. Across two processes on Redis:
// the watch in this process sees what a child process does, each event once, in order.
// An AbortSignal stops it.

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const { getEventListeners } = require('node:events');
const { fork } = require('node:child_process');
const path = require('node:path');

const {
  CARD, STORES, keyringEntry, openVault, redisCommand, rejectsWith, startRedis, storeOptions, Vault,
} = require('./support');

/** The next event of `iterator` within `ms`. */
async function nextEvent(iterator, ms = 5000) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no event within ${ms} ms`)), ms); });
  try {
    return await Promise.race([iterator.next(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

for (const store of STORES) {
  describe(`watch on ${store}`, () => {
    test('yields the state first, then each event once, and ends; the signal stops it', async () => {
      const vault = await openVault(store);
      const { id } = await vault.createSession();
      const events = await vault.watch(id);
      assert.equal(typeof events[Symbol.asyncIterator], 'function');
      const iterator = events[Symbol.asyncIterator]();
      const first = await nextEvent(iterator);
      assert.equal(first.done, false);
      assert.equal(first.value.type, 'created');
      assert.equal(first.value.state, 'pending');
      assert.equal(first.value.sessionId, id);
      assert.equal(first.value.fromState, true);
      assert.ok(first.value.at instanceof Date);
      const { pin } = await vault.submit(id, CARD);
      const submitted = await nextEvent(iterator);
      assert.deepEqual([submitted.value.type, submitted.value.attemptsLeft], ['submitted', 5]);
      await rejectsWith(vault.reveal(id, pin === '000000' ? '111111' : '000000'), 'WRONG_PIN');
      const failed = await nextEvent(iterator);
      assert.deepEqual([failed.value.type, failed.value.attemptsLeft], ['reveal_failed', 4]);
      await vault.reveal(id, pin);
      assert.equal((await nextEvent(iterator)).value.type, 'revealed');
      assert.equal((await nextEvent(iterator)).done, true);
      for (const event of [first, submitted, failed]) {
        const text = JSON.stringify(event);
        assert.ok(!text.includes('4242') && !text.includes(pin), 'an event holds card data or the PIN');
      }

      // An AbortSignal ends a watch that waits.
      const other = await vault.createSession();
      const controller = new AbortController();
      const seen = [];
      const loop = (async () => {
        for await (const event of await vault.watch(other.id, { signal: controller.signal })) seen.push(event.type);
      })();
      await new Promise((r) => setTimeout(r, 200));
      controller.abort();
      await loop;
      assert.deepEqual(seen, ['created']);
    });

    test('an abort before the watch starts, or before it resolves, ends it; the host keeps its onabort', async () => {
      const vault = await openVault(store);
      const { id } = await vault.createSession();
      // Already aborted when watch is called.
      const aborted = new AbortController();
      aborted.abort();
      const early = await vault.watch(id, { signal: aborted.signal });
      assert.deepEqual(await early.next(), { done: true });
      // Aborted between the call and its resolution.
      const racing = new AbortController();
      let hostSaw = 0;
      racing.signal.onabort = () => { hostSaw += 1; };
      const pending = vault.watch(id, { signal: racing.signal });
      racing.abort();
      const late = await pending;
      assert.deepEqual(await late.next(), { done: true });
      assert.equal(hostSaw, 1, "the host's own onabort was replaced");
      // A signal the host sets onabort on afterwards still ends the watch.
      const later = new AbortController();
      const events = await vault.watch(id, { signal: later.signal });
      later.signal.onabort = () => {};
      assert.equal((await events.next()).value.type, 'created');
      const waiting = events.next();
      later.abort();
      assert.deepEqual(await waiting, { done: true });
    });

    test('a signal shared by many watches keeps no listener once each has ended', async () => {
      const vault = await openVault(store);
      const shared = new AbortController();
      const warnings = [];
      const onWarning = (w) => warnings.push(w.name);
      process.on('warning', onWarning);
      try {
        const options = { signal: shared.signal };
        for (let i = 0; i < 15; i += 1) {
          // Ended by leaving the loop (return()).
          const { id } = await vault.createSession();
          for await (const event of await vault.watch(id, options)) {
            assert.equal(event.type, 'created');
            break;
          }
          // Ended by its last event.
          const { id: cancelled } = await vault.createSession();
          const events = await vault.watch(cancelled, options);
          assert.equal((await events.next()).value.type, 'created');
          await vault.cancel(cancelled);
          assert.equal((await events.next()).value.type, 'cancelled');
          assert.deepEqual(await events.next(), { done: true });
          // Never started: an unknown session.
          await rejectsWith(vault.watch(Buffer.alloc(32, i).toString('base64url'), options), 'NOT_FOUND');
        }
        assert.equal(getEventListeners(shared.signal, 'abort').length, 0);
        // A watch still running keeps its listener, and the shared signal still ends it.
        const { id } = await vault.createSession();
        const running = await vault.watch(id, options);
        assert.equal((await running.next()).value.type, 'created');
        assert.equal(getEventListeners(shared.signal, 'abort').length, 1);
        const waiting = running.next();
        shared.abort();
        assert.deepEqual(await waiting, { done: true });
        await new Promise((r) => setImmediate(r));
        assert.deepEqual(warnings, [], 'Node warned of a listener leak');
      } finally {
        process.off('warning', onWarning);
      }
    });

    test('errors: an unknown session, a bad id, a bad signal', async () => {
      const vault = await openVault(store);
      const { id } = await vault.createSession();
      await rejectsWith(vault.watch('x'.repeat(43)), 'INVALID_ARGUMENT');
      const unknown = Buffer.alloc(32, 7).toString('base64url');
      await rejectsWith(vault.watch(unknown), 'NOT_FOUND');
      await rejectsWith(vault.forTenant('other').watch(id), 'NOT_FOUND');
      await assert.rejects(async () => vault.watch(id, { signal: 'soon' }));
      await assert.rejects(async () => vault.watch(id, { signal: { aborted: false } }));
    });
  });
}

test('a session the store loses during a watch ends it: next() rejects with err.code NOT_FOUND', async () => {
  const redis = await startRedis();
  try {
    const vault = await Vault.open({ store: { type: 'redis', url: redis.url }, keys: { keyring: [keyringEntry()] } });
    const { id } = await vault.createSession();
    const events = await vault.watch(id);
    assert.equal(events[Symbol.asyncIterator](), events, 'the iterator is the object itself');
    assert.equal((await nextEvent(events)).value.type, 'created');
    // What a restart without persistence does: the data is gone and every subscriber is
    // dropped, so the watch subscribes again, reads the session, and finds nothing.
    assert.match(await redisCommand(redis.port, 'FLUSHALL'), /^\+OK/);
    assert.match(await redisCommand(redis.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub'), /^:[1-9]/);
    await rejectsWith(nextEvent(events), 'NOT_FOUND', [id]);
    const after = await events.next();
    assert.equal(after.done, true);
    assert.equal(after.value, undefined);
  } finally {
    await redis.stop();
  }
});

test('many watches share one Redis connection', async () => {
  // A server of this test's own, so its client list is ours alone.
  const redis = await startRedis();
  try {
    const vault = await Vault.open({ store: redis.url, keys: { keyring: [keyringEntry()] } });
    const ids = [];
    for (let i = 0; i < 30; i++) ids.push((await vault.createSession()).id);
    const watches = [];
    for (const id of ids) watches.push(await vault.watch(id));
    for (const events of watches) assert.equal((await nextEvent(events)).value.type, 'created');
    const clients = await redisCommand(redis.port, 'CLIENT', 'LIST', 'TYPE', 'pubsub');
    assert.equal(clients.split('\n').filter((line) => line.includes('id=')).length, 1,
      'every watch subscribes on the store\'s one subscriber connection');
    for (const id of ids) await vault.submit(id, CARD);
    for (const events of watches) assert.equal((await nextEvent(events)).value.type, 'submitted');
  } finally {
    await redis.stop();
  }
});

test('leaving a for await loop ends the watch through return(), which resolves done', async () => {
  const vault = await openVault('memory');
  const { id } = await vault.createSession();
  const events = await vault.watch(id);
  for await (const event of events) {
    assert.equal(event.type, 'created');
    break;
  }
  assert.equal((await events.next()).done, true, 'a watch left by break still yields');
  assert.equal((await events.return()).done, true);
});

describe('watch across two processes on redis', () => {
  test('a watch here sees submitted, reveal_failed, revealed done by another process, each once, in order', async () => {
    const options = { store: await storeOptions('redis'), keys: { keyring: [keyringEntry()] } };
    const vault = await Vault.open(options);
    const { id } = await vault.createSession();
    const late = await vault.createSession();
    const iterator = (await vault.watch(id))[Symbol.asyncIterator]();
    assert.equal((await nextEvent(iterator)).value.type, 'created');

    const child = fork(path.join(__dirname, 'events-worker.js'), [], { serialization: 'advanced' });
    const ask = (message) => new Promise((resolve, reject) => {
      child.once('message', resolve);
      child.once('error', reject);
      child.send(message);
    });
    try {
      assert.equal(await ask({ open: { ...options, keys: { keyring: options.keys.keyring.map((k) => ({ id: k.id, key: [...k.key] })) } } }), 'ready');
      const pin = await ask({ submit: id });
      assert.deepEqual(await nextEvent(iterator).then((e) => [e.value.type, e.value.fromState]), ['submitted', false]);
      assert.equal(await ask({ reveal: id, pin: pin === '000000' ? '111111' : '000000' }), 'WRONG_PIN:4');
      assert.deepEqual(await nextEvent(iterator).then((e) => [e.value.type, e.value.attemptsLeft]), ['reveal_failed', 4]);
      assert.equal(await ask({ reveal: id, pin }), 'ok');
      assert.equal((await nextEvent(iterator)).value.type, 'revealed');
      assert.equal((await nextEvent(iterator)).done, true);

      // Submitted there before the watch here starts: the watch learns it first.
      const latePin = await ask({ submit: late.id });
      const lateIterator = (await vault.watch(late.id))[Symbol.asyncIterator]();
      assert.deepEqual(await nextEvent(lateIterator).then((e) => [e.value.type, e.value.fromState]), ['submitted', true]);
      assert.equal(await ask({ reveal: late.id, pin: latePin }), 'ok');
      assert.equal((await nextEvent(lateIterator)).value.type, 'revealed');
    } finally {
      child.kill();
    }
  });
});
