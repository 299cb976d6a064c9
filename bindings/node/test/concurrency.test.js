'use strict';
// The invariants of docs/ARCHITECTURE.md ("Why the invariants hold") hold when Node fires many calls at once: one reveal, one
// submission, at most max_attempts PIN guesses evaluated.

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');

const { CARD, STORES, Vault, keyringEntry, storeOptions } = require('./support');

/** A cardholder name for customer `i` (names take letters, not digits). */
function customer(i) {
  return `Customer ${[...String(i)].map((d) => 'abcdefghij'[d]).join('')}`;
}

/** Settles every promise and counts outcomes by code ('ok' for successes). */
async function outcomes(promises) {
  const results = await Promise.allSettled(promises);
  const counts = {};
  for (const r of results) {
    const key = r.status === 'fulfilled' ? 'ok' : r.reason.code;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return { results, counts };
}

for (const store of STORES) {
  describe(`concurrency on ${store}`, () => {
    // Several vault instances on one store, as several agent processes would have.
    async function vaults(n) {
      const options = { store: await storeOptions(store), keys: { keyring: [keyringEntry()] } };
      if (store === 'memory') {
        const one = await Vault.open(options);
        return Array.from({ length: n }, () => one);
      }
      return Promise.all(Array.from({ length: n }, () => Vault.open(options)));
    }

    test('100 concurrent reveals of one session: exactly one success', async () => {
      const [first, ...others] = await vaults(4);
      const all = [first, ...others];
      for (let round = 0; round < 3; round++) {
        const { id } = await first.createSession();
        const { pin } = await first.submit(id, CARD);
        const { results, counts } = await outcomes(
          Array.from({ length: 100 }, (_, i) => all[i % all.length].reveal(id, pin)),
        );
        assert.equal(counts.ok, 1, JSON.stringify(counts));
        // The others found the session revealed, or every attempt taken by guesses in flight.
        for (const code of Object.keys(counts)) assert.ok(['ok', 'ALREADY_REVEALED', 'LOCKED'].includes(code), code);
        const winner = results.find((r) => r.status === 'fulfilled').value;
        assert.equal(winner.fields.card_number, '4242424242424242');
        assert.equal((await first.status(id)).state, 'revealed');
      }
    });

    test('100 concurrent submissions: exactly one is stored', async () => {
      const all = await vaults(4);
      const { id } = await all[0].createSession();
      const { results, counts } = await outcomes(Array.from({ length: 100 }, (_, i) => all[i % all.length].submit(id, {
        ...CARD, cardholder_name: customer(i),
      })));
      assert.deepEqual(counts, { ok: 1, ALREADY_SUBMITTED: 99 });
      const index = results.findIndex((r) => r.status === 'fulfilled');
      const form = await all[0].reveal(id, results[index].value.pin);
      assert.equal(form.fields.cardholder_name, customer(index));
    });

    test('50 concurrent wrong PINs: at most max_attempts are evaluated, then locked', async () => {
      const all = await vaults(4);
      const { id } = await all[0].createSession({ maxAttempts: 5 });
      const { pin } = await all[0].submit(id, CARD);
      const wrong = pin === '000000' ? '111111' : '000000';
      const { results, counts } = await outcomes(Array.from({ length: 50 }, (_, i) => all[i % all.length].reveal(id, wrong)));
      assert.deepEqual(Object.keys(counts).sort(), ['LOCKED', 'WRONG_PIN'].filter((c) => counts[c]).sort());
      assert.ok(counts.WRONG_PIN <= 4, JSON.stringify(counts));
      const left = results.filter((r) => r.status === 'rejected' && r.reason.code === 'WRONG_PIN').map((r) => r.reason.attemptsLeft);
      assert.equal(new Set(left).size, left.length, `attemptsLeft repeated: ${left}`);
      assert.equal((await all[0].status(id)).state, 'locked');
      await assert.rejects(all[0].reveal(id, pin), { code: 'LOCKED' });
    });

    test('many sessions at once stay independent', async () => {
      const all = await vaults(2);
      const flows = Array.from({ length: 200 }, async (_, i) => {
        const vault = all[i % all.length];
        const { id } = await vault.createSession({ metadata: { n: String(i) } });
        const { pin } = await vault.submit(id, { ...CARD, cardholder_name: customer(i) });
        const form = await all[(i + 1) % all.length].reveal(id, pin);
        return [i, form.fields.cardholder_name, (await vault.status(id)).metadata.n];
      });
      for (const [i, name, n] of await Promise.all(flows)) {
        assert.equal(name, customer(i));
        assert.equal(n, String(i));
      }
    });
  });
}
