'use strict';
// The connection an administrator fills in once per Cognigy project: where the vault keeps
// sessions, and the key material. Cognigy stores connection fields encrypted and hands them
// to each node as `config.connection`.

/** @type {import('@cognigy/extension-tools').IConnectionSchema} */
const pciVaultConnection = {
  type: 'pci-vault',
  label: 'PCI Vault store and keys',
  fields: [
    // 'memory' (one process: development only), a redis:// or rediss:// URL, or several
    // comma-separated URLs of a Redis Cluster. The form server must use the same store.
    { fieldName: 'storeUrl' },
    // A keyring text: `id:base64-key` entries separated by commas, the first one primary
    // (`openssl rand -base64 32` makes a key). The form server needs the same keys.
    { fieldName: 'keyring' },
  ],
};

module.exports = { pciVaultConnection };
