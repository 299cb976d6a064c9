'use strict';
// The connection an administrator fills in once per Cognigy project: how the nodes reach
// the vault, and the secrets that takes. Cognigy stores connection fields encrypted and
// hands them to each node as `config.connection`.

/** @type {import('@cognigy/extension-tools').IConnectionSchema} */
const pciVaultConnection = {
  type: 'pci-vault',
  label: 'PCI Vault',
  fields: [
    // `in-process` (empty means the same): the vault runs inside Cognigy's Node.js process,
    // through the native module (a trusted extension). `server`: the nodes call a
    // pci-vault server's agent API over HTTPS, where native addons are not allowed.
    { fieldName: 'transport' },
    // in-process: a redis:// or rediss:// URL, or several comma-separated URLs of a Redis
    // Cluster — the store of the form server. `memory` is refused: no form server could
    // reach a store inside Cognigy's process.
    { fieldName: 'storeUrl' },
    // in-process: the keyring text, `id:base64-key` entries separated by commas, the first
    // one primary (`openssl rand -base64 32` makes a key). The form server needs the same keys.
    { fieldName: 'keyring' },
    // server: the server's base URL, https:// (http:// on a loopback address only).
    { fieldName: 'serverUrl' },
    // server: one of the server's agent API keys (its --api-keys).
    { fieldName: 'apiKey' },
  ],
};

module.exports = { pciVaultConnection };
