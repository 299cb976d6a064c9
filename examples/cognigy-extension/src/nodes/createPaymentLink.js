'use strict';
// Step 1 of the flow: the agent (or the bot) asks for a payment link. The session id and
// the link go into the context; the link can be said to the customer at once.

const { createNodeDescriptor } = require('@cognigy/extension-tools');

const { connectionField, contextKeyField } = require('../fields');
const { invalidArgument, outputNodes, runNode } = require('../outputs');
const { RemoteVault } = require('../remote');

const TYPE = 'createPaymentLink';
const OUTPUTS = [
  ['createPaymentLinkCreated', 'Link created'],
  ['createPaymentLinkFailed', 'Link not created'],
];

const createPaymentLink = createNodeDescriptor({
  type: TYPE,
  defaultLabel: 'Create payment link',
  summary: 'Creates a one-time secure card form and puts its id and link into the context',
  fields: [
    connectionField,
    {
      key: 'publicBaseUrl',
      label: 'Form server URL',
      type: 'cognigyText',
      description: 'The public address of the card form server; the link is {publicBaseUrl}/forms/{id}. '
        + 'With the server transport, leave it empty to use the link the server gives.',
    },
    { key: 'ttlSeconds', label: 'Link lifetime (seconds)', type: 'number', defaultValue: 900 },
    {
      key: 'message',
      label: 'Message to the customer',
      type: 'cognigyText',
      defaultValue: 'Please enter your card details on this secure page: {link}',
      description: '{link} is replaced by the link. Leave empty to say nothing.',
    },
    contextKeyField,
  ],
  dependencies: { children: OUTPUTS.map(([type]) => type) },
  tags: ['service'],
  function: (params) => runNode(params, async (vault, contextKey) => {
    const { cognigy, config } = params;
    const conversation = cognigy.input?.sessionId;
    const metadata = typeof conversation === 'string' && conversation.length > 0 && conversation.length <= 256
      ? { conversation }
      : {};
    const ttlSeconds = config.ttlSeconds === undefined || config.ttlSeconds === '' ? undefined : Number(config.ttlSeconds);
    if (ttlSeconds !== undefined && !Number.isSafeInteger(ttlSeconds)) {
      throw invalidArgument('the link lifetime must be a whole number of seconds');
    }
    // The in-process vault knows no form server: its link needs the node's base URL. A
    // pci-vault server gives its own link.
    const base = String(config.publicBaseUrl ?? '').trim().replace(/\/+$/, '');
    if (!base && !(vault instanceof RemoteVault)) {
      throw invalidArgument('the form server URL is required with the in-process transport');
    }
    const ticket = await vault.createSession({ ttlSeconds, metadata });
    const link = base ? `${base}/forms/${ticket.id}` : ticket.url;
    cognigy.api.addToContext(contextKey, {
      id: ticket.id, link, expiresAt: ticket.expiresAt.toISOString(), state: 'pending',
    }, 'simple');
    if (config.message) cognigy.api.say(String(config.message).split('{link}').join(link));
    return 'createPaymentLinkCreated';
  }, () => 'createPaymentLinkFailed'),
});

module.exports = { createPaymentLink, createPaymentLinkOutputs: outputNodes(TYPE, OUTPUTS) };
