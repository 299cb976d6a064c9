'use strict';
// The binding with its keys in an HSM (a SoftHSM2 token, through PKCS#11) and in AWS KMS
// (moto's server): the key-source strings scripts/suites/40-node.sh sets up. Two vaults with
// the same source share sessions on Redis; a key the HSM or KMS does not have is refused at
// open with KEY_UNAVAILABLE, naming no secret.

const { test } = require('node:test');
const assert = require('node:assert/strict');

const { CARD, Vault, rejectsWith, storeOptions } = require('../support');

const SOURCES = [
  ['an HSM (SoftHSM2)', 'PCI_VAULT_TEST_HSM_KEY_SOURCE', 'k1'],
  ['AWS KMS (moto)', 'PCI_VAULT_TEST_KMS_KEY_SOURCE', null],
];

/** `source` with its primary key (`key=`) replaced by `key`. */
function withKey(source, key) {
  return source.replace(/key=[^;]*/, `key=${key}`);
}

for (const [where, variable, label] of SOURCES) {
  test(`keys in ${where}: two vaults share a session on Redis, the wraps are counted under the key`, async () => {
    const source = process.env[variable];
    assert.ok(source, `${variable} names the key source (scripts/suites/40-node.sh sets it)`);
    const store = await storeOptions('redis');
    const agent = await Vault.open({ store, keys: { source } });
    const form = await Vault.open({ store, keys: { source } });

    const { id } = await agent.createSession();
    const { pin } = await form.submit(id, CARD);
    const revealed = await agent.reveal(id, pin);
    assert.equal(revealed.card.maskedNumber, '424242******4242');
    assert.equal(revealed.fields.card_number, '4242424242424242');

    const [usage] = agent.keyUsage();
    const keyId = label ?? /key=([^;]*)/.exec(source)[1];
    assert.equal(usage.keyId, keyId);
    assert.equal(usage.wraps, 1);
    assert.equal(usage.rotationDue, false);
  });

  test(`keys in ${where}: a key that is not there is KEY_UNAVAILABLE at open`, async () => {
    const source = process.env[variable];
    assert.ok(source, `${variable} names the key source (scripts/suites/40-node.sh sets it)`);
    const missing = label ? 'no-such-key' : '00000000-0000-0000-0000-000000000000';
    const secrets = [require('node:fs').readFileSync(/pin-file=([^;]*)/.exec(source)?.[1] ?? '/dev/null', 'utf8').trim()]
      .filter((s) => s.length > 0);
    await rejectsWith(
      Vault.open({ store: await storeOptions('redis'), keys: { source: withKey(source, missing) } }),
      'KEY_UNAVAILABLE',
      secrets,
    );
  });
}
