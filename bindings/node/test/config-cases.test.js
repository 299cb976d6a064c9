'use strict';
// The shared cases of config/tests/cases.json through `Vault.open`: the same store string,
// key source and options open the same vault here as in Rust, Python and the server.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');

const { Vault } = require('..');
const { CARD } = require('./support');

const { cases } = JSON.parse(
  fs.readFileSync(path.join(__dirname, '../../../config/tests/cases.json'), 'utf8'),
);

/** The case's `Vault.open` options, as a Node host writes them. */
function options(c) {
  const keys = c.keys.keyring
    ? { keyring: c.keys.keyring.map(({ id, key }) => ({ id, key: Buffer.from(key, 'base64') })) }
    : c.keys;
  const out = { store: c.store, keys };
  const d = c.session_defaults;
  if (d) {
    out.sessionDefaults = {};
    if (d.ttl_seconds !== undefined) out.sessionDefaults.ttlSeconds = d.ttl_seconds;
    if (d.pin_length !== undefined) out.sessionDefaults.pinLength = d.pin_length;
    if (d.max_attempts !== undefined) out.sessionDefaults.maxAttempts = d.max_attempts;
    if (d.fields !== undefined) out.sessionDefaults.fields = d.fields;
  }
  if (c.tenant !== undefined) out.tenant = c.tenant;
  if (c.audit_key_len !== undefined) out.auditKey = Buffer.alloc(c.audit_key_len, 7);
  return out;
}

test('the shared cases open the same vault', async () => {
  assert.ok(cases.length > 20, 'the case file lost its cases');
  for (const c of cases) {
    const { expect } = c;
    let vault;
    try {
      vault = await Vault.open(options(c));
    } catch (e) {
      assert.ok(expect.error, `${c.name}: ${e.code} ${e.message}`);
      assert.equal(e.code, expect.error, `${c.name}: ${e.message}`);
      for (const s of c.secrets ?? []) assert.ok(!e.message.includes(s), `${c.name}: ${e.message}`);
      continue;
    }
    assert.ok(!expect.error, `${c.name}: opened, expected ${expect.error}`);
    assert.equal(vault.tenant, expect.tenant, c.name);
    assert.deepEqual(vault.storeWarnings, [], c.name);
    // The defaults, as a session created with them shows them.
    const ticket = await vault.createSession();
    const status = await vault.status(ticket.id);
    assert.equal(status.attemptsLeft, expect.max_attempts, c.name);
    assert.deepEqual(status.fields, expect.fields, c.name);
    const ttl = Math.round((status.expiresAt.getTime() - status.createdAt.getTime()) / 1000);
    assert.equal(ttl, expect.ttl_seconds, c.name);
    const fields = Object.fromEntries(expect.fields.map((f) => [f, CARD[f] ?? 'ref-1']));
    const { pin } = await vault.submit(ticket.id, fields);
    assert.equal(pin.length, expect.pin_length, c.name);
  }
});
