'use strict';
// One open Vault per connection, shared by every node execution in this process: opening
// connects to Redis and loads the keys, which should not happen on every chat turn.

const crypto = require('node:crypto');
const { Vault } = require('@pci-vault/node');

/** Open vaults by a digest of their connection (never by the key material itself). */
const vaults = new Map();

/**
 * The vault for a `pci-vault` connection (`{ storeUrl, keyring }`). A vault that failed to
 * open is forgotten, so the next call tries again.
 * @param {{ storeUrl?: unknown, keyring?: unknown } | undefined} connection
 * @returns {Promise<import('@pci-vault/node').Vault>}
 */
function vaultFor(connection) {
  const storeUrl = connection?.storeUrl;
  const keyring = connection?.keyring;
  if (typeof storeUrl !== 'string' || typeof keyring !== 'string') {
    const error = new TypeError('the pci-vault connection needs storeUrl and keyring, both text');
    error.code = 'INVALID_ARGUMENT';
    return Promise.reject(error);
  }
  const id = crypto.createHash('sha256').update(JSON.stringify([storeUrl, keyring])).digest('hex');
  let vault = vaults.get(id);
  if (!vault) {
    vault = Vault.open({ store: storeUrl.trim() || 'memory', keys: { keyring } });
    vaults.set(id, vault);
    vault.catch(() => vaults.delete(id));
  }
  return vault;
}

module.exports = { vaultFor };
