#!/usr/bin/env bash
# The Cognigy.AI extension upload: builds it with the README's command, checks that it
# holds what Cognigy expects (build/, package.json, package-lock.json, README.md, a 64×64
# icon.png), then does what Cognigy does with an upload — unpacks it in an empty place and
# runs `npm ci`, without network, against a loopback registry that holds only the public
# dependency (@cognigy/extension-tools) — loads the package's main as Cognigy loads an
# extension (its `default` export) and drives its nodes through a whole payment flow on a
# throwaway redis-server, with the native module installed from the upload itself.
set -euo pipefail

# The part that runs in the clean place: no network, an empty HOME, no NODE_PATH, cwd under
# /tmp.
if [ "${1:-}" = "--in-clean-place" ]; then
  work=$2 lib=$3
  # shellcheck source=scripts/lib.sh
  . "$lib"
  use_loopback_npm_registry "$work/npm-registry.js" "$work/public" "$work"

  cd "$work/upload"
  echo "+ npm ci"
  npm ci
  # A subshell: start_redis stops its redis-server when the subshell exits.
  (start_redis && node "$work/drive.js")
  exit 0
fi

cd "$(dirname "$0")/../.."
. scripts/lib.sh
ensure_command node nodejs
ensure_command npm npm
ensure_command redis-server redis-server
ensure_command redis-cli redis-tools
ensure_command xz xz-utils

extension=examples/cognigy-extension
version=$(node -p "require('./$extension/package.json').version")
upload_name="pci-vault-cognigy-extension-$version.tar.gz"

# The binding's build tools (npm run zip packs the binding).
[ -d bindings/node/node_modules ] || (cd bindings/node && npm ci --no-audit --no-fund)
step "build the upload ($extension: the README's command)"
command=$(awk '/^```sh$/ { getline; print; exit }' "$extension/README.md")
[ "$command" = "npm ci && npm run zip" ] || die "the extension README starts with '$command', not 'npm ci && npm run zip'"
rm -f "$extension/$upload_name"
(cd "$extension" && echo "+ $command" && npm_config_audit=false npm_config_fund=false bash -c "$command")
mkdir -p "$PCI_VAULT_RELEASE_DIR"
mv "$extension/$upload_name" "$PCI_VAULT_RELEASE_DIR/"
upload="$PCI_VAULT_RELEASE_DIR/$upload_name"

step "what the upload holds"
work=$(mktemp -d /tmp/pci-vault-cognigy-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/upload" "$work/public" "$work/home"
tar -xzf "$upload" -C "$work/upload"
top=$(tar -tzf "$upload" | cut -d/ -f1 | LC_ALL=C sort -u | tr '\n' ' ')
[ "$top" = "README.md build icon.png package-lock.json package.json " ] || die "the upload holds: $top"
python3 - "$work/upload/icon.png" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "icon.png is not a PNG"
size = struct.unpack(">II", data[16:24])
assert size == (64, 64), f"icon.png is {size[0]}x{size[1]}, not 64x64"
print("icon.png: PNG, 64x64")
PY
ls "$work/upload/build/vendor"
# What the upload's install may take from a registry: its public dependencies, nothing else.
node -e '
  const lock = require(process.argv[1]);
  for (const [where, entry] of Object.entries(lock.packages)) {
    if (!where) continue;
    const from = entry.resolved ?? "";
    if (where.includes("@pci-vault/") && !from.startsWith("file:build/vendor/")) throw new Error(`${where} is not vendored: ${from}`);
    if (!where.includes("@pci-vault/") && !(from === "" || from.startsWith("https://registry.npmjs.org/"))) throw new Error(`${where} comes from ${from}`);
    if (!/^sha512-/.test(entry.integrity ?? "")) throw new Error(`${where} has no sha512 integrity`);
  }
  console.log("package-lock.json: @pci-vault/* from build/vendor/, the rest from the public registry; sha512 for each");' \
  "$work/upload/package-lock.json"

step "the public dependency, as the npm registry holds it"
tools_version=$(node -p "require('$work/upload/package-lock.json').packages['node_modules/@cognigy/extension-tools'].version")
(cd "$work/public" && npm pack --silent "@cognigy/extension-tools@$tools_version" >/dev/null)
ls "$work/public"

step "npm ci in the unpacked upload, offline; load it and drive its nodes"
cp scripts/release/npm-registry.js "$work/npm-registry.js"
cp "$0" "$work/check-cognigy.sh"
cat >"$work/drive.js" <<'EOF'
// Loads the installed upload as Cognigy does (package main, `default` export) and runs its
// nodes: a link, the customer's submission (the form server: the installed binding on the
// same Redis with the same keys), the status, a wrong PIN, the reveal; and the memory store
// refused.
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');

// Modules resolved as from inside the installed upload (this script lives beside it).
const fromUpload = require('node:module').createRequire(path.join(process.cwd(), 'package.json'));
const extension = fromUpload(process.cwd()).default;
const { Vault } = fromUpload('@pci-vault/node');
assert.ok(fromUpload.resolve('@pci-vault/node-linux-x64-gnu').startsWith(path.join(process.cwd(), 'node_modules')));

const node = (type) => extension.nodes.find((n) => n.type === type);
async function run(type, config, input = {}, context = {}) {
  let next;
  const cognigy = {
    input, context, profile: {},
    api: {
      say: () => {}, log: () => {}, setNextNode: (id) => { next = id; },
      addToContext: (key, value) => { context[key] = JSON.parse(JSON.stringify(value)); },
      addToInput: (key, value) => { input[key] = value; },
    },
  };
  const n = node(type);
  await n.function({ cognigy, config, childConfigs: n.dependencies.children.map((t) => ({ id: t, type: t, config: {} })) });
  return { output: next, context, input };
}

(async () => {
  const keyring = `k1:${crypto.randomBytes(32).toString('base64')}`;
  const storeUrl = process.env.PCI_VAULT_TEST_REDIS_URL;
  const connection = { transport: 'in-process', storeUrl, keyring };
  const formServer = await Vault.open({ store: storeUrl, keys: { keyring } });

  const memory = await run('createPaymentLink', { connection: { ...connection, storeUrl: 'memory' }, publicBaseUrl: 'https://pay.example.com', contextKey: 'pciVault' });
  assert.equal(memory.output, 'createPaymentLinkFailed');
  assert.match(memory.context.pciVault.error.message, /memory store/);

  const link = await run('createPaymentLink', { connection, publicBaseUrl: 'https://pay.example.com', ttlSeconds: 600, message: '{link}', contextKey: 'pciVault' }, { sessionId: 'c-1' });
  assert.equal(link.output, 'createPaymentLinkCreated');
  const { id } = link.context.pciVault;
  const { pin } = await formServer.submit(id, { card_number: '4242 4242 4242 4242', expiry: '12/34', cvc: '123', cardholder_name: 'Ada Lovelace' });
  const config = { connection, sessionId: id, contextKey: 'pciVault' };
  assert.equal((await run('sessionStatus', config, {}, link.context)).output, 'sessionStatusSubmitted');
  const wrong = pin === '000000' ? '111111' : '000000';
  assert.equal((await run('revealCard', { ...config, pin: wrong }, {}, link.context)).output, 'revealCardWrongPin');
  const revealed = await run('revealCard', { ...config, pin: `my PIN is ${pin}`, storeLocation: 'input', inputKey: 'card' }, {}, link.context);
  assert.equal(revealed.output, 'revealCardRevealed');
  assert.equal(revealed.input.card.card_number, '4242424242424242');
  assert.deepEqual(revealed.context.pciVault.card, { brand: 'visa', maskedNumber: '424242******4242' });
  assert.equal((await run('revealCard', { ...config, pin }, {}, link.context)).output, 'revealCardAlreadyRevealed');
  console.log(`extension ${require(path.join(process.cwd(), 'package.json')).version}: ${extension.nodes.length} nodes; `
    + 'memory refused; link, submit, status, wrong PIN, reveal, second reveal refused');
  process.exit(0);
})().catch((err) => { console.error(err); process.exit(1); });
EOF
lib="$PWD/scripts/lib.sh"
(cd "$work" && offline env -u NODE_PATH HOME="$work/home" \
  bash "$work/check-cognigy.sh" --in-clean-place "$work" "$lib")

release_report "$upload" "npm ci (offline, only @cognigy/extension-tools from a registry); default export driven through a payment flow on redis"
