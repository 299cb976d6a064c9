'use strict';
// One vault per connection, shared by every node execution in this process: opening
// connects to Redis and loads the keys (or checks the server address and key), which
// should not happen on every chat turn. The connection's `transport` chooses how the
// nodes reach the vault: in this process through the native binding, or through a
// pci-vault server's agent API.

const crypto = require('node:crypto');

const { RemoteVault } = require('./remote');

/** Open vaults (or their pending opening) by a digest of their connection, never by its secrets. */
const vaults = new Map();

function invalid(message) {
  const error = new TypeError(`the pci-vault connection: ${message}`);
  error.code = 'INVALID_ARGUMENT';
  return error;
}

function text(connection, field) {
  const value = connection?.[field];
  if (typeof value !== 'string' || value.trim() === '') throw invalid(`${field} is required, as text`);
  return value.trim();
}

/** The in-process vault: the native binding, on the store the form server uses. */
function openInProcess(connection) {
  const storeUrl = text(connection, 'storeUrl');
  if (storeUrl.toLowerCase() === 'memory') {
    throw invalid('the memory store lives inside this Cognigy process, where no form server can reach it: '
      + 'set storeUrl to the Redis (redis:// or rediss://) the form server uses');
  }
  const keyring = text(connection, 'keyring');
  // Loaded only here: where native addons are not allowed, the server transport never
  // touches the binding.
  const { Vault } = require('@pci-vault/node');
  return Vault.open({ store: storeUrl, keys: { keyring } });
}

/** The vault behind a pci-vault server, through its agent API. */
function openServer(connection) {
  return new RemoteVault(text(connection, 'serverUrl'), text(connection, 'apiKey'));
}

const TRANSPORTS = { 'in-process': openInProcess, server: openServer };

/**
 * The vault for a `pci-vault` connection. `transport` is `in-process` (the default:
 * `storeUrl` and `keyring`) or `server` (`serverUrl` and `apiKey`). A vault that failed to
 * open is forgotten, so the next call tries again.
 * @param {Record<string, unknown> | undefined} connection
 * @returns {Promise<{ createSession: Function, status: Function, reveal: Function, cancel: Function }>}
 */
function vaultFor(connection) {
  let open;
  let id;
  try {
    if (connection === null || typeof connection !== 'object') throw invalid('the node has no connection');
    const transport = connection.transport === undefined || connection.transport === ''
      ? 'in-process'
      : String(connection.transport).trim().toLowerCase();
    open = TRANSPORTS[transport];
    if (!open) throw invalid('transport must be "in-process" or "server"');
    const fields = transport === 'server' ? ['serverUrl', 'apiKey'] : ['storeUrl', 'keyring'];
    id = crypto.createHash('sha256')
      .update(JSON.stringify([transport, ...fields.map((f) => connection[f])]))
      .digest('hex');
  } catch (error) {
    return Promise.reject(error);
  }
  let vault = vaults.get(id);
  if (!vault) {
    vault = new Promise((resolve) => resolve(open(connection)));
    vaults.set(id, vault);
    vault.catch(() => vaults.delete(id));
  }
  return vault;
}

module.exports = { vaultFor };
