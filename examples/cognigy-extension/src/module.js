'use strict';
// The extension: three flow nodes (with their outputs) and one connection. Exported as
// `default`, as Cognigy's own (TypeScript) extensions export it.

const { createExtension } = require('@cognigy/extension-tools');

const { pciVaultConnection } = require('./connection');
const { createPaymentLink, createPaymentLinkOutputs } = require('./nodes/createPaymentLink');
const { revealCard, revealCardOutputs } = require('./nodes/revealCard');
const { sessionStatus, sessionStatusOutputs } = require('./nodes/sessionStatus');

Object.defineProperty(exports, '__esModule', { value: true });
exports.default = createExtension({
  nodes: [
    createPaymentLink, ...createPaymentLinkOutputs,
    revealCard, ...revealCardOutputs,
    sessionStatus, ...sessionStatusOutputs,
  ],
  connections: [pciVaultConnection],
});
