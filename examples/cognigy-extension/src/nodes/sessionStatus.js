'use strict';
// Where a payment session is: pending, submitted, revealed, cancelled or locked. The state
// goes into the context, with the card's brand and masked number (first 6, last 4) while it
// is submitted, so the bot can ask "Visa ending 4242?" before the PIN; nothing else of the
// card. The flow follows one output per state.

const { createNodeDescriptor } = require('@cognigy/extension-tools');

const { connectionField, contextKeyField, sessionIdField } = require('../fields');
const { outputNodes, runNode, updateContext } = require('../outputs');

const TYPE = 'sessionStatus';
const OUTPUTS = [
  ['sessionStatusPending', 'Waiting for the customer'],
  ['sessionStatusSubmitted', 'Submitted: ask for the PIN'],
  ['sessionStatusRevealed', 'Revealed'],
  ['sessionStatusCancelled', 'Cancelled'],
  ['sessionStatusLocked', 'Locked'],
  ['sessionStatusNotFound', 'Unknown or expired'],
  ['sessionStatusError', 'Error'],
];
const BY_STATE = {
  pending: 'sessionStatusPending', submitted: 'sessionStatusSubmitted', revealed: 'sessionStatusRevealed', cancelled: 'sessionStatusCancelled', locked: 'sessionStatusLocked',
};

const sessionStatus = createNodeDescriptor({
  type: TYPE,
  defaultLabel: 'Payment session status',
  summary: 'Reads the state of a payment session into the context',
  fields: [connectionField, sessionIdField, contextKeyField],
  dependencies: { children: OUTPUTS.map(([type]) => type) },
  tags: ['service'],
  function: (params) => runNode(params, async (vault, contextKey) => {
    const status = await vault.status(params.config.sessionId);
    updateContext(params.cognigy, contextKey, {
      state: status.state,
      attemptsLeft: status.attemptsLeft,
      expiresAt: status.expiresAt.toISOString(),
      submittedAt: status.submittedAt ? status.submittedAt.toISOString() : null,
      card: status.card ? { brand: status.card.brand, maskedNumber: status.card.maskedNumber } : null,
      error: null,
    });
    return BY_STATE[status.state] ?? 'sessionStatusError';
  }, (code) => (code === 'NOT_FOUND' ? 'sessionStatusNotFound' : 'sessionStatusError')),
});

module.exports = { sessionStatus, sessionStatusOutputs: outputNodes(TYPE, OUTPUTS) };
