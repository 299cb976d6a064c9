'use strict';
// The extension: three flow nodes (with their outputs) and one connection.

const { createExtension } = require('@cognigy/extension-tools');

const { pciVaultConnection } = require('./connection');
const { createPaymentLink, createPaymentLinkOutputs } = require('./nodes/createPaymentLink');
const { revealCard, revealCardOutputs } = require('./nodes/revealCard');
const { sessionStatus, sessionStatusOutputs } = require('./nodes/sessionStatus');

module.exports = createExtension({
  nodes: [
    createPaymentLink, ...createPaymentLinkOutputs,
    revealCard, ...revealCardOutputs,
    sessionStatus, ...sessionStatusOutputs,
  ],
  connections: [pciVaultConnection],
});
