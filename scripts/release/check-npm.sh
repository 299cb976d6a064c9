#!/usr/bin/env bash
# The npm packages of the Node binding: packs the loader (@pci-vault/node) and the
# package of this platform (@pci-vault/node-linux-x64-gnu), checks that the native module
# needs no glibc newer than 2.17, then installs them as a user would — the install command
# of the README, in an empty project under /tmp, without network, from a loopback registry
# that holds only the two tarballs — and runs the README's quick starts with `require` and
# with `import`, as they are written in the installed README.
set -euo pipefail

GLIBC_BASELINE=2.17

# The part that runs in the clean place: no network, an empty HOME, no NODE_PATH, cwd under
# /tmp.
if [ "${1:-}" = "--in-clean-place" ]; then
  tarballs=$2 work=$3 registry=$4 lib=$5
  # shellcheck source=scripts/lib.sh
  . "$lib"
  use_loopback_npm_registry "$registry" "$tarballs" "$work"

  mkdir -p "$work/project"
  cd "$work/project"
  printf '{ "name": "quickstart", "version": "1.0.0", "private": true }\n' >package.json
  # The README's first command, as a user reads it. The README is the one of the loader
  # tarball: the text a user sees on the npm page.
  tar -xzOf "$tarballs"/pci-vault-node-[0-9]*.tgz package/README.md >"$work/README.md"
  install=$(awk '/^```sh$/ { getline; print; exit }' "$work/README.md")
  [ "$install" = "npm install @pci-vault/node" ] || die "the README starts with '$install', not 'npm install @pci-vault/node'"
  echo "+ $install"
  $install

  # The module comes from the per-platform package in this project, nowhere else.
  node -e '
    const path = require("node:path");
    const native = require.resolve("@pci-vault/node-linux-x64-gnu");
    if (!native.startsWith(path.join(process.cwd(), "node_modules") + path.sep)) throw new Error(`native module from ${native}`);
    const { Vault } = require("@pci-vault/node");
    if (typeof Vault.open !== "function") throw new Error("no Vault.open");
    console.log(`native module: ${path.relative(process.cwd(), native)}`);'

  node - "$work/README.md" <<'EOF'
    // The README's quick starts, exactly as written: the first ```js (CommonJS) and the
    // first ```mjs (ES modules) block under "## Quick start (Node)".
    const fs = require('node:fs');
    const { execFileSync } = require('node:child_process');
    const readme = fs.readFileSync(process.argv[2], 'utf8');
    const section = readme.split(/^## /m).find((s) => s.startsWith('Quick start (Node)'));
    if (!section) throw new Error('the README has no "## Quick start (Node)"');
    for (const [language, file] of [['js', 'quickstart.js'], ['mjs', 'quickstart.mjs']]) {
      const block = section.match(new RegExp('```' + language + '\n([\\s\\S]*?)\n```'));
      if (!block) throw new Error(`the quick start has no ${language} block`);
      fs.writeFileSync(file, block[1]);
      const out = execFileSync(process.execPath, [file], { encoding: 'utf8', timeout: 60_000 });
      const lines = out.trim().split('\n');
      const expected = ['submitted', 'visa 424242******4242', 'ALREADY_REVEALED'];
      if (lines.length !== 4 || !/^link for the customer: https:\/\/pay\.example\.com\/forms\/[A-Za-z0-9_-]{43}$/.test(lines[0])
        || JSON.stringify(lines.slice(1)) !== JSON.stringify(expected) || out.includes('4242424242424242')) {
        throw new Error(`${file} printed:\n${out}`);
      }
      console.log(`${file}: ${lines.slice(1).join(' / ')}`);
    }
EOF
  exit 0
fi

cd "$(dirname "$0")/../.."
. scripts/lib.sh
ensure_command node nodejs
ensure_command npm npm
ensure_command objdump binutils
ensure_command xz xz-utils

out="$PCI_VAULT_RELEASE_DIR/npm"
version=$(node -p 'require("./bindings/node/package.json").version')
loader="$out/pci-vault-node-$version.tgz"
native="$out/pci-vault-node-linux-x64-gnu-$version.tgz"

[ -d bindings/node/node_modules ] || (cd bindings/node && npm ci --no-audit --no-fund)
step "npm run release:pack (bindings/node)"
rm -rf "$out"
(cd bindings/node && npm run release:pack -- "$out")
for tarball in "$loader" "$native"; do
  tar -tzf "$tarball" | grep -x 'package/LICENSE' >/dev/null || die "$(basename "$tarball") has no LICENSE"
done
{ [ -f "$loader" ] && [ -f "$native" ]; } || die "release:pack made no $loader and $native"

step "what the tarballs hold"
! tar -tzf "$loader" | grep -q '\.node$' || die "the loader package carries a native module"
[ "$(tar -tzf "$native" | grep -c '\.node$')" = 1 ] || die "$native does not hold exactly one .node"
tar -xzOf "$loader" package/package.json | node -e '
  const m = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
  const deps = m.optionalDependencies ?? {};
  const want = ["linux-x64-gnu", "linux-x64-musl", "linux-arm64-gnu", "darwin-x64", "darwin-arm64", "win32-x64-msvc"];
  for (const p of want) if (deps[`@pci-vault/node-${p}`] !== m.version) throw new Error(`optionalDependencies: @pci-vault/node-${p} is not ${m.version}`);
  if (m.private || m.devDependencies || m.scripts) throw new Error("the loader manifest is private or carries devDependencies/scripts");
  console.log(`loader: optionalDependencies ${Object.keys(deps).length} platforms at ${m.version}; exports ${Object.keys(m.exports["."]).join(", ")}`);'

step "glibc symbols of the Linux x64 module (baseline $GLIBC_BASELINE)"
work=$(mktemp -d /tmp/pci-vault-npm-XXXXXX)
trap 'rm -rf "$work"' EXIT
tar -xzf "$native" -C "$work" package/pci-vault.linux-x64-gnu.node
newest=$(objdump -T "$work/package/pci-vault.linux-x64-gnu.node" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
[ -n "$newest" ] || die "objdump -T found no GLIBC symbol version: not a glibc build?"
[ "$(printf '%s\n%s\n' "$newest" "$GLIBC_BASELINE" | sort -V | tail -1)" = "$GLIBC_BASELINE" ] \
  || die "the module needs GLIBC_$newest, newer than the $GLIBC_BASELINE baseline"
echo "newest glibc symbol version: GLIBC_$newest (baseline $GLIBC_BASELINE)"

step "npm install @pci-vault/node in an empty project, offline"
registry="$work/npm-registry.js"
cp scripts/release/npm-registry.js "$registry"
cp "$0" "$work/check-npm.sh"
mkdir -p "$work/home" "$work/tarballs"
cp "$loader" "$native" "$work/tarballs/"
lib="$PWD/scripts/lib.sh"
(cd "$work" && offline env -u NODE_PATH HOME="$work/home" \
  bash "$work/check-npm.sh" --in-clean-place "$work/tarballs" "$work" "$registry" "$lib")

release_report "$loader" "npm install @pci-vault/node (offline, empty project); README quick start with require and with import"
release_report "$native" "installed by npm as the loader's optional dependency; objdump -T: newest GLIBC_$newest <= $GLIBC_BASELINE"
