'use strict';
// Node fields several nodes share.

/** The `pci-vault` connection. */
const connectionField = {
  key: 'connection',
  label: 'PCI Vault connection',
  type: 'connection',
  params: { connectionType: 'pci-vault', required: true },
};

/** Where in the context the node keeps what it learnt (never clear card data). */
const contextKeyField = {
  key: 'contextKey',
  label: 'Context key',
  type: 'cognigyText',
  defaultValue: 'pciVault',
  description: 'The context key of the payment session: id, link, state, masked card, last error.',
  params: { required: true },
};

/** The session id, by default the one the payment-link node stored. */
const sessionIdField = {
  key: 'sessionId',
  label: 'Session id',
  type: 'cognigyText',
  defaultValue: '{{context.pciVault.id}}',
  params: { required: true },
};

module.exports = { connectionField, contextKeyField, sessionIdField };
