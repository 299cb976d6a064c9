'use strict';
// Child nodes ("outputs") of a flow node: the node ends by sending the flow down exactly
// one of them, so a flow designer attaches what the bot or agent does in each case.

const { createNodeDescriptor } = require('@cognigy/extension-tools');

const { vaultFor } = require('./vault');

/**
 * Child node descriptors of `parentType`, one per `[type, label]`.
 * @param {string} parentType
 * @param {Array<[string, string]>} outputs
 */
function outputNodes(parentType, outputs) {
  return outputs.map(([type, label]) => createNodeDescriptor({
    type,
    parentType,
    defaultLabel: label,
    appearance: { color: '#1d4e89', textColor: 'white', variant: 'mini' },
    constraints: {
      editable: false,
      deletable: false,
      creatable: false,
      movable: false,
      placement: { predecessor: { whitelist: [] } },
    },
  }));
}

/**
 * Sends the flow to the child node of type `type` (when the flow has one).
 * @param {import('@cognigy/extension-tools').INodeFunctionBaseParams} params
 * @param {string} type
 */
function follow({ cognigy, childConfigs }, type) {
  const child = (childConfigs ?? []).find((c) => c.type === type);
  if (child) cognigy.api.setNextNode?.(child.id);
}

/**
 * The error to keep in the context: its stable code, message and attempts left. Never a
 * value, a PIN or a key (the vault's messages contain none). An error without a stable
 * code is a bug, not an outcome: it is thrown on, for Cognigy to report.
 * @param {any} error
 */
function errorSummary(error) {
  if (!(error instanceof Error) || typeof error.code !== 'string' || !/^[A-Z_]+$/.test(error.code)) throw error;
  const summary = { code: error.code, message: error.message };
  if (typeof error.attemptsLeft === 'number') summary.attemptsLeft = error.attemptsLeft;
  return summary;
}

/**
 * An error of the node's own configuration, with the code the vault gives bad input.
 * @param {string} message
 */
function invalidArgument(message) {
  return Object.assign(new TypeError(message), { code: 'INVALID_ARGUMENT' });
}

/**
 * Replaces the node's part of the context: `cognigy.context[key]` merged with `values`.
 * @param {any} cognigy
 * @param {string} key
 * @param {object} values
 */
function updateContext(cognigy, key, values) {
  const current = cognigy.context?.[key];
  const base = current && typeof current === 'object' && !Array.isArray(current) ? current : {};
  cognigy.api.addToContext(key, { ...base, ...values }, 'simple');
}

/**
 * Runs a node: `work(vault, contextKey)` resolves to the output to take. A failure with a
 * stable code is kept in the context as `error` and takes the output `failureOutput(code)`.
 * @param {import('@cognigy/extension-tools').INodeFunctionBaseParams & { config: any }} params
 * @param {(vault: import('@pci-vault/node').Vault, contextKey: string) => Promise<string>} work
 * @param {(code: string) => string} failureOutput
 */
async function runNode(params, work, failureOutput) {
  const { cognigy, config } = params;
  const contextKey = config.contextKey || 'pciVault';
  let output;
  try {
    output = await work(await vaultFor(config.connection), contextKey);
  } catch (error) {
    const summary = errorSummary(error);
    updateContext(cognigy, contextKey, { error: summary });
    output = failureOutput(summary.code);
  }
  follow(params, output);
}

module.exports = { invalidArgument, outputNodes, runNode, updateContext };
