#!/usr/bin/env bash
# The example server beyond `cargo test` (which runs its HTTP tests in 10-rust):
#   1. headless Chromium (Debian's, driven by playwright-core) fills the customer form and
#      uses the agent console against the real binary;
#   2. schemathesis checks every operation of /openapi.json against a running server: no
#      5xx response, no status, content type, header or body outside the document.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

logs="${PCI_VAULT_TEST_LOGS:-$PWD/.test-run/logs}"
mkdir -p "$logs"

step "build pci-vault-server"
cargo build -p pci-vault-server --locked
bin="$PWD/target/debug/pci-vault-server"

step "browser test: customer form and agent console in headless Chromium"
ensure_command chromium chromium
ensure_command npm npm
(
  cd examples/server/tests/browser
  npm ci --no-audit --no-fund --loglevel=error
  PCI_VAULT_SERVER_BIN="$bin" PCI_VAULT_TEST_LOGS="$logs" npm test
)

step "schemathesis against /openapi.json"
schemathesis_version=4.32.5
venv="$PWD/.test-run/schemathesis-venv"
if ! "$venv/bin/st" --version 2>/dev/null | grep -qF "$schemathesis_version"; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    apt_install python3-venv
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

port=$(free_port)
key=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
server_log="$logs/server-schemathesis.log"
# Generous limits: the run is a burst from one client, and a 429 would hide the logic.
"$bin" --listen "127.0.0.1:$port" --api-keys "$key" --log-format json \
  --form-rate-limit 100000 --reveal-rate-limit 100000 --auth-failure-limit 100000 \
  >"$server_log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do
  grep -q '^pci-vault-server listening on ' "$server_log" && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$server_log"; die "the server exited at start"; }
  sleep 0.05
done
grep -q '^pci-vault-server listening on ' "$server_log" || die "the server did not start"

report="$PWD/.test-run/schemathesis-report"
# Run from .test-run, where schemathesis may keep its own state.
(cd .test-run && "$venv/bin/st" run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --max-examples 100 --seed 20261125 --generation-database none \
  --workers 2 --request-timeout 10 --no-color \
  --report junit --report-dir "$report")

step "stop the server (SIGTERM) and expect a clean exit"
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
trap - EXIT
[ "$status" -eq 0 ] || die "the server exited with $status after SIGTERM"
grep -q '"stopped"' "$server_log" || die "the server did not log its shutdown"
echo "schemathesis: no 5xx and no schema violation; server stopped cleanly"
