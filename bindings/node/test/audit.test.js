'use strict';
// Audit events (PCI DSS 10.2) reach the host through onAudit: one per action, with the
// outcome, the actor and attempts left, a keyed reference instead of the session id, and no
// secret; a throwing callback cannot crash the process or stop the vault.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFileSync, spawnSync } = require('node:child_process');

const { CARD, Vault, keyringEntry, storeOptions, rejectsWith } = require('./support');
const { sessionRef } = require('..');

/** Resolves once `events` holds `count` events (they arrive on the JavaScript thread). */
async function until(events, count) {
  for (let i = 0; i < 500 && events.length < count; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(events.length, count, JSON.stringify(events, null, 1));
}

test('every action is audited, with a reference instead of the id and no secret', async () => {
  const events = [];
  const vault = await Vault.open({
    store: 'memory', keys: { keyring: [keyringEntry()] }, tenant: 'acme', onAudit: (e) => events.push(e),
  });
  const { id } = await vault.createSession();
  const { pin } = await vault.submit(id, CARD);
  const wrong = pin === '000000' ? '111111' : '000000';
  await rejectsWith(vault.reveal(id, wrong), 'WRONG_PIN');
  await vault.reveal(id, pin);
  await rejectsWith(vault.reveal(id, pin), 'ALREADY_REVEALED');
  const other = await vault.createSession();
  await vault.cancel(other.id);
  await until(events, 7);

  const seen = events.map((e) => [e.action, e.outcome, e.actor, e.attemptsLeft]);
  assert.deepEqual(seen, [
    ['created', 'success', 'agent', null],
    ['submitted', 'success', 'customer', null],
    ['revealed', 'WRONG_PIN', 'agent', 4],
    ['revealed', 'success', 'agent', null],
    ['revealed', 'ALREADY_REVEALED', 'agent', null],
    ['created', 'success', 'agent', null],
    ['cancelled', 'success', 'agent', null],
  ]);
  for (const e of events) {
    assert.equal(e.tenant, 'acme');
    assert.ok(e.at instanceof Date && Math.abs(e.at.getTime() - Date.now()) < 60_000);
    assert.match(e.sessionRef, /^[0-9a-f]{32}$/);
  }
  assert.equal(new Set(events.slice(0, 5).map((e) => e.sessionRef)).size, 1);
  assert.notEqual(events[5].sessionRef, events[0].sessionRef);
  const text = JSON.stringify(events);
  for (const secret of [id, other.id, pin, wrong, '4242424242424242', 'Ada Lovelace']) {
    assert.ok(!text.includes(secret), 'an audit event holds a secret');
  }
});

test('vaults sharing an audit key give one session one reference', async () => {
  const store = await storeOptions('redis');
  const keyring = [keyringEntry()];
  const auditKey = crypto.randomBytes(32);
  const agentEvents = [];
  const serverEvents = [];
  const agent = await Vault.open({ store, keys: { keyring }, auditKey, onAudit: (e) => agentEvents.push(e) });
  const server = await Vault.open({ store, keys: { keyring }, auditKey, onAudit: (e) => serverEvents.push(e) });
  const { id } = await agent.createSession();
  await server.submit(id, CARD);
  await until(agentEvents, 1);
  await until(serverEvents, 1);
  assert.equal(agentEvents[0].sessionRef, serverEvents[0].sessionRef);
  // An operator with the key finds the session's events from its id.
  assert.equal(sessionRef(auditKey, id), agentEvents[0].sessionRef);
  assert.notEqual(sessionRef(crypto.randomBytes(32), id), agentEvents[0].sessionRef);
  const unkeyed = [];
  const third = await Vault.open({ store, keys: { keyring }, onAudit: (e) => unkeyed.push(e) });
  await third.status(id);
  await third.cancel(id);
  await until(unkeyed, 1);
  assert.notEqual(unkeyed[0].sessionRef, agentEvents[0].sessionRef);
});

test('sessionRef is the documented HMAC and refuses bad input without echo', () => {
  const key = Buffer.alloc(32, 7);
  const id = Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('base64url');
  const mac = crypto.createHmac('sha256', key).update('pci-vault/v1/audit')
    .update(Buffer.from(id, 'base64url')).digest('hex').slice(0, 32);
  assert.equal(sessionRef(key, id), mac);
  assert.throws(() => sessionRef(Buffer.alloc(31), id), (e) => e.code === 'INVALID_ARGUMENT');
  assert.throws(() => sessionRef(key, 'not-an-id'), (e) => e.code === 'INVALID_ARGUMENT' && !e.message.includes('not-an-id'));
  assert.throws(() => sessionRef('key', id), TypeError);
});

test('a throwing onAudit does not crash the process or stop the vault', async () => {
  let calls = 0;
  const vault = await Vault.open({
    keys: { development: true }, onAudit: () => { calls++; throw new Error('audit trail down'); },
  });
  for (let i = 0; i < 20; i++) {
    const { id } = await vault.createSession();
    const { pin } = await vault.submit(id, CARD);
    assert.equal((await vault.reveal(id, pin)).fields.cvc, '123');
  }
  await vault.flushAudit();
  assert.equal(calls, 60);
  assert.equal(vault.auditFailures(), 60);
});

test('flushAudit waits for every recorded event, async onAudit included, then the process may exit', () => {
  // onAudit does not keep the process alive: without the flush, events still on their way
  // to a slow audit trail when the script ends would be lost.
  const script = `
    const { Vault } = require(${JSON.stringify(require.resolve('..'))});
    const card = ${JSON.stringify(CARD)};
    (async () => {
      const written = [];
      const vault = await Vault.open({
        keys: { development: true },
        onAudit: async (e) => {
          await new Promise((r) => setTimeout(r, 30));
          written.push(e.action);
        },
      });
      const other = vault.forTenant('acme');
      for (let i = 0; i < 10; i++) {
        const { id } = await vault.createSession();
        const { pin } = await vault.submit(id, card);
        await vault.reveal(id, pin);
        await other.createSession();
      }
      await other.flushAudit();
      console.log(written.length, vault.auditFailures());
      const plain = await Vault.open({ keys: { development: true } });
      await plain.flushAudit();
      console.log(plain.auditFailures());
      process.exit(0);
    })();`;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(out.trim(), '40 0\n0');
});

test('an async onAudit that rejects does not crash the process', () => {
  // An unhandled rejection ends Node: the check runs in a process of its own, which must
  // finish all its operations and exit with 0.
  const script = `
    const { Vault } = require(${JSON.stringify(require.resolve('..'))});
    const card = ${JSON.stringify(CARD)};
    (async () => {
      let calls = 0;
      const vault = await Vault.open({
        keys: { development: true },
        onAudit: async () => { calls++; throw new Error('audit trail down'); },
      });
      for (let i = 0; i < 20; i++) {
        const { id } = await vault.createSession();
        const { pin } = await vault.submit(id, card);
        await vault.reveal(id, pin);
      }
      await vault.flushAudit();
      await new Promise((r) => setTimeout(r, 50));
      console.log('calls', calls, 'failures', vault.auditFailures());
    })();`;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(out.trim(), 'calls 60 failures 60');
});

test('a thenable from onAudit whose then throws is a failed delivery, not a crash', () => {
  // A `then` getter that throws, or a `then` that throws when called: each event counts
  // as not delivered, like a rejection, and the process goes on. Node is run with the
  // policy that makes an exception left pending by a native module fatal, so such an
  // exception ends the child instead of only printing a warning.
  const script = `
    const { Vault } = require(${JSON.stringify(require.resolve('..'))});
    const thenables = {
      getter: () => ({ get then() { throw new Error('audit trail down'); } }),
      call: () => ({ then() { throw new Error('audit trail down'); } }),
      primitive: () => ({ get then() { throw 'audit trail down'; } }),
    };
    (async () => {
      for (const [name, make] of Object.entries(thenables)) {
        let calls = 0;
        const vault = await Vault.open({
          keys: { development: true },
          onAudit: () => { calls++; return make(); },
        });
        for (let i = 0; i < 5; i++) await vault.createSession();
        await vault.flushAudit();
        await new Promise((r) => setTimeout(r, 20));
        console.log(name, calls, vault.auditFailures());
      }
    })();`;
  for (const flags of [[], ['--force-node-api-uncaught-exceptions-policy=true']]) {
    const run = spawnSync(process.execPath, [...flags, '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.stderr, '', `stderr with ${flags}`);
    assert.equal(run.status, 0, `exit status with ${flags}`);
    assert.equal(run.stdout.trim(), 'getter 5 5\ncall 5 5\nprimitive 5 5', `output with ${flags}`);
  }
});

test('onAudit must be a function', async () => {
  for (const onAudit of ['log', 42, {}, [], true]) {
    const e = await rejectsWith(Vault.open({ keys: { development: true }, onAudit }), 'INVALID_ARGUMENT');
    assert.ok(e instanceof TypeError);
  }
});
