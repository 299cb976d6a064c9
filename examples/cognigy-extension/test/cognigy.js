'use strict';
// Runs a flow node's `function` as Cognigy.AI does: with a `cognigy` object (api, input,
// context, profile), the node's resolved config and the configs of its child nodes. The
// api records what the node said, what it put into the context and which output it took.

const assert = require('node:assert/strict');

/**
 * Executes `node` once. `input` and `context` are the conversation's objects; the node may
 * change them. Resolves to what it said, the output (child node type) it took, and the
 * context and input after it ran.
 */
async function execute(node, { config, input = {}, context = {} }) {
  const said = [];
  const next = [];
  const cognigy = {
    input,
    context,
    profile: {},
    api: {
      say: (text, data) => { said.push(text); void data; },
      addToContext: (key, value, mode) => {
        assert.equal(mode, 'simple');
        // Cognigy keeps the context as JSON between turns.
        context[key] = JSON.parse(JSON.stringify(value));
      },
      setNextNode: (id) => next.push(id),
      log: () => {},
    },
  };
  const childConfigs = node.dependencies.children.map((type) => ({ id: `child:${type}`, type, config: {} }));
  await node.function({ cognigy, config, childConfigs, nodeId: `node:${node.type}` });
  assert.ok(next.length <= 1, `the node took ${next.length} outputs`);
  return { said, output: next[0]?.slice('child:'.length), context, input };
}

module.exports = { execute };
