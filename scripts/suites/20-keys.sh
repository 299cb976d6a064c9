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
module=/usr/lib/softhsm/libsofthsm2.so
[ -f "$module" ] || die "softhsm2 is installed but $module is missing"
moto_venv

work=$(mktemp -d)
on_exit "rm -rf '$work'"

step "SoftHSM2 token directory in ${work}"
mkdir -p "$work/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$work/tokens" >"$work/softhsm2.conf"
export SOFTHSM2_CONF="$work/softhsm2.conf"
export PCI_VAULT_PKCS11_MODULE="$module"

start_moto kms "$work" MOTO_ENABLE_RECORDING=True MOTO_RECORDER_FILEPATH="$work/moto-recording"
port=$moto_port
export PCI_VAULT_TEST_KMS_ENDPOINT="http://127.0.0.1:$port"
# A second server whose request signature checks tests/web_identity.rs turns on (moto's
# IAM authentication is one switch for a whole server, so it gets one of its own).
start_moto auth "$work"
export PCI_VAULT_TEST_KMS_AUTH_ENDPOINT="http://127.0.0.1:$moto_port"
# Test credentials for moto, which accepts any; never real ones.
export AWS_ACCESS_KEY_ID=pci-vault-test AWS_SECRET_ACCESS_KEY=pci-vault-test
unset AWS_SESSION_TOKEN AWS_PROFILE

step "cargo test (pci-vault-pkcs11 on SoftHSM2, pci-vault-aws-kms on moto)"
cargo test --locked -p pci-vault-pkcs11 -p pci-vault-aws-kms
