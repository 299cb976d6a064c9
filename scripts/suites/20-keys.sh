#!/usr/bin/env bash
# The HSM and KMS key providers: the PKCS#11 provider (backends/pkcs11) against SoftHSM2,
# initialised in a temporary directory, and the AWS KMS provider (backends/aws-kms) against
# moto's KMS and STS servers on loopback, from a venv of pinned packages (static and
# web-identity credentials; one server checks request signatures). Each provider runs the
# conformance suite's vault tests on the memory store, rotation, lookup by key id, what the
# token or KMS is sent, and its configuration errors. 10-rust leaves these two crates' tests
# to this suite: they fail without the environment it sets.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

ensure_command softhsm2-util softhsm2
ensure_command python3 python3
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt_install python3-venv
  python3 -c 'import venv, ensurepip' || die "python3 cannot create a venv"
fi
module=/usr/lib/softhsm/libsofthsm2.so
[ -f "$module" ] || die "softhsm2 is installed but $module is missing"

venv=.test-run/moto-venv
requirements=backends/aws-kms/tests/requirements-moto.txt
step "moto venv ($venv) from $requirements"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! cmp -s "$requirements" "$venv/requirements.txt"; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/requirements.txt"
fi

work=$(mktemp -d)
moto_pids=()
cleanup() {
  for pid in "${moto_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

step "SoftHSM2 token directory in ${work}"
mkdir -p "$work/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$work/tokens" >"$work/softhsm2.conf"
export SOFTHSM2_CONF="$work/softhsm2.conf"
export PCI_VAULT_PKCS11_MODULE="$module"

# start_moto NAME [VAR=VALUE...]: starts moto_server on a free loopback port with the
# given environment, waits until it accepts connections, records its PID for cleanup and
# sets moto_port.
start_moto() {
  local name=$1 port pid
  shift
  port=$(free_port)
  step "moto server ($name) on 127.0.0.1:$port"
  env "$@" "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto-$name.log" 2>&1 &
  pid=$!
  moto_pids+=("$pid")
  for _ in $(seq 1 100); do
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' \
      "$port" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || die "moto_server ($name) exited: $(cat "$work/moto-$name.log")"
    sleep 0.1
  done
  python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' \
    "$port" 2>/dev/null || die "moto_server ($name) did not start on port $port"
  moto_port=$port
}

start_moto kms MOTO_ENABLE_RECORDING=True MOTO_RECORDER_FILEPATH="$work/moto-recording"
port=$moto_port
export PCI_VAULT_TEST_KMS_ENDPOINT="http://127.0.0.1:$port"
# A second server whose request signature checks tests/web_identity.rs turns on (moto's
# IAM authentication is one switch for a whole server, so it gets one of its own).
start_moto auth
export PCI_VAULT_TEST_KMS_AUTH_ENDPOINT="http://127.0.0.1:$moto_port"
# Test credentials for moto, which accepts any; never real ones.
export AWS_ACCESS_KEY_ID=pci-vault-test AWS_SECRET_ACCESS_KEY=pci-vault-test
unset AWS_SESSION_TOKEN AWS_PROFILE

step "cargo test (pci-vault-pkcs11 on SoftHSM2, pci-vault-aws-kms on moto)"
cargo test --locked -p pci-vault-pkcs11 -p pci-vault-aws-kms
