'use strict';
// Steps 6–7 of the flow: the customer reads the PIN out in the chat; this node reveals the
// card once. The masked card goes into the context; the full form goes where the flow
// designer says (the input, which lives for this turn only, by default); the flow goes on
// through one output per outcome, so each error code has its own, clear path.

const { createNodeDescriptor } = require('@cognigy/extension-tools');

const { connectionField, contextKeyField, sessionIdField } = require('../fields');
const { outputNodes, runNode, updateContext } = require('../outputs');

const TYPE = 'revealCard';

/** One output per outcome: the success, and each code a reveal can answer. */
const OUTPUTS = [
  ['revealCardRevealed', 'Revealed', null],
  ['revealCardWrongPin', 'Wrong PIN', 'WRONG_PIN'],
  ['revealCardLocked', 'Locked (too many wrong PINs)', 'LOCKED'],
  ['revealCardAlreadyRevealed', 'Already revealed', 'ALREADY_REVEALED'],
  ['revealCardNotSubmitted', 'Not submitted yet', 'NOT_SUBMITTED'],
  ['revealCardCancelled', 'Cancelled', 'CANCELLED'],
  ['revealCardNotFound', 'Unknown or expired', 'NOT_FOUND'],
  ['revealCardInvalidPin', 'Not a PIN', 'INVALID_ARGUMENT'],
  ['revealCardStoreUnavailable', 'Store unavailable', 'STORE_UNAVAILABLE'],
  ['revealCardKeyUnavailable', 'Keys unavailable', 'KEY_UNAVAILABLE'],
  ['revealCardIntegrityError', 'Integrity error', 'INTEGRITY_ERROR'],
  ['revealCardError', 'Other error', undefined],
];

/**
 * The PIN in a chat message: the first run of 4–12 digits, which may be grouped by single
 * spaces or dashes ("my PIN is 123 456" → "123456"). Without one, the text as it is, which
 * the vault answers with INVALID_ARGUMENT (and which never counts as a wrong PIN).
 * @param {unknown} text
 */
function pinIn(text) {
  const message = String(text ?? '');
  const match = message.match(/(?<!\d)\d(?:[ -]?\d){3,11}(?!\d)/);
  return match ? match[0].replace(/[ -]/g, '') : message;
}

const revealCard = createNodeDescriptor({
  type: TYPE,
  defaultLabel: 'Reveal card with PIN',
  summary: 'Reveals the submitted card once with the PIN the customer read out',
  fields: [
    connectionField,
    sessionIdField,
    {
      key: 'pin',
      label: 'PIN text',
      type: 'cognigyText',
      defaultValue: '{{input.text}}',
      description: 'The message with the PIN; the first group of 4–12 digits is taken.',
      params: { required: true },
    },
    {
      key: 'storeLocation',
      label: 'Where to put the full card form',
      type: 'select',
      defaultValue: 'input',
      params: {
        options: [
          { label: 'Input (this turn only)', value: 'input' },
          { label: 'Context (kept for the session)', value: 'context' },
        ],
      },
    },
    { key: 'inputKey', label: 'Input key', type: 'cognigyText', defaultValue: 'pciVaultForm', condition: { key: 'storeLocation', value: 'input' } },
    { key: 'formContextKey', label: 'Context key of the form', type: 'cognigyText', defaultValue: 'pciVaultForm', condition: { key: 'storeLocation', value: 'context' } },
    contextKeyField,
  ],
  dependencies: { children: OUTPUTS.map(([type]) => type) },
  tags: ['service'],
  function: (params) => runNode(params, async (vault, contextKey) => {
    const { cognigy, config } = params;
    const form = await vault.reveal(config.sessionId, pinIn(config.pin));
    updateContext(cognigy, contextKey, { state: 'revealed', card: form.card, error: null });
    if (config.storeLocation === 'context') {
      cognigy.api.addToContext(config.formContextKey || 'pciVaultForm', form.fields, 'simple');
    } else {
      const key = config.inputKey || 'pciVaultForm';
      if (typeof cognigy.api.addToInput === 'function') cognigy.api.addToInput(key, form.fields);
      else cognigy.input[key] = form.fields;
    }
    return 'revealCardRevealed';
  }, (code) => (OUTPUTS.find(([, , c]) => c === code) ?? OUTPUTS[OUTPUTS.length - 1])[0]),
});

module.exports = {
  revealCard,
  revealCardOutputs: outputNodes(TYPE, OUTPUTS.map(([type, label]) => [type, label])),
  REVEAL_OUTPUTS: OUTPUTS,
  pinIn,
};
