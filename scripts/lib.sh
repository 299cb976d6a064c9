# Shared helpers for scripts/test and the suites in scripts/suites/. Source it; do not run it.
# Every suite runs on a laptop and in CI alike; what it needs and lacks, it installs (system
# packages only with CI set or after asking: see apt_install).

step() { printf '\n==> %s\n' "$*"; }

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# apt_install PACKAGE...: installs Debian packages with apt-get (through sudo unless root).
# With CI set it goes ahead; on a terminal it asks first; with neither it stops and names
# the packages, so a laptop never gets system packages it was not asked about.
apt_install() {
  [ $# -gt 0 ] || return 0
  if [ -z "${CI:-}" ]; then
    if [ -t 0 ]; then
      local answer=""
      read -r -p "scripts/test needs the Debian package(s) $* — install them with apt-get now? [y/N] " answer || true
      case "$answer" in
        [yY] | [yY][eE][sS]) ;;
        *) die "not installing $*: install them yourself, or run with CI=1 to let scripts/test install them" ;;
      esac
    else
      die "missing Debian package(s) $*: install them (apt-get install $*), or run with CI=1 to let scripts/test install them"
    fi
  fi
  step "installing $*"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ -z "${PCI_VAULT_APT_UPDATED:-}" ]; then
    $sudo apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update failed"
    export PCI_VAULT_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@" >/dev/null \
    || die "could not install $*"
}

# ensure_command CMD PACKAGE: installs Debian PACKAGE (see apt_install) when CMD is not on
# the PATH.
ensure_command() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  apt_install "$pkg"
  command -v "$cmd" >/dev/null 2>&1 || die "$pkg is installed but $cmd is still missing"
}

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# on_exit COMMAND: runs COMMAND (a shell string) when the calling shell exits, before the
# commands registered earlier (last in, first out: a service stops before the directory it
# writes to goes). Every command runs even if one fails, and the shell's exit status is
# kept. A subshell's commands run when the subshell exits, and only those. The one EXIT trap
# of the helpers below, so a suite can start several services and have each stopped.
PCI_VAULT_ON_EXIT=()
PCI_VAULT_ON_EXIT_SHELL=
on_exit() {
  if [ "$PCI_VAULT_ON_EXIT_SHELL" != "$BASHPID" ]; then
    # A new (sub)shell: the commands inherited from its parent are the parent's to run.
    PCI_VAULT_ON_EXIT=()
    PCI_VAULT_ON_EXIT_SHELL=$BASHPID
  fi
  PCI_VAULT_ON_EXIT=("$1" "${PCI_VAULT_ON_EXIT[@]}")
  trap 'pci_vault_status=$?; set +e
for pci_vault_command in "${PCI_VAULT_ON_EXIT[@]}"; do eval "$pci_vault_command"; done
exit $pci_vault_status' EXIT
}

# start_redis: starts a throwaway redis-server on a free loopback port (with the flags of
# testkit/redis-flags.json: no persistence, noeviction), exports PCI_VAULT_TEST_REDIS_URL,
# and stops it by PID when the calling shell exits.
start_redis() {
  ensure_command redis-server redis-server
  local port dir
  port=$(free_port)
  dir=$(mktemp -d)
  # The arguments every test launcher of the repository uses (testkit/redis-flags.json).
  local flags=()
  mapfile -t flags < <(python3 -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))["args"]))' \
    "$(dirname "${BASH_SOURCE[0]}")/../testkit/redis-flags.json")
  [ "${#flags[@]}" -gt 0 ] || die "cannot read testkit/redis-flags.json"
  redis-server --port "$port" "${flags[@]}" --dir "$dir" --logfile "$dir/redis.log" &
  PCI_VAULT_TEST_REDIS_PID=$!
  on_exit "kill $PCI_VAULT_TEST_REDIS_PID 2>/dev/null; wait $PCI_VAULT_TEST_REDIS_PID 2>/dev/null || true; rm -rf '$dir'"
  for _ in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-cli -p "$port" ping >/dev/null 2>&1 || die "redis-server did not start on port $port"
  export PCI_VAULT_TEST_REDIS_URL="redis://127.0.0.1:$port"
}

# release_report FILE WHAT: records a built artefact (its name and size) and what the
# release check ran from it, for the table scripts/suites/60-release.sh prints.
release_report() {
  local file=$1 what=$2
  [ -f "$file" ] || die "release_report: no artefact $file"
  [ -n "${PCI_VAULT_RELEASE_REPORT:-}" ] || die "release_report: run from scripts/suites/60-release.sh"
  printf '%s\t%s\t%s\n' "$(basename "$file")" "$(stat -c %s "$file")" "$what" >>"$PCI_VAULT_RELEASE_REPORT"
}

# offline COMMAND...: runs COMMAND with no network (a new network namespace holding only
# loopback) when the machine allows it, else with every proxy and registry pointed at a
# closed port, so an install that would reach the network fails instead.
offline() {
  if unshare --user --map-root-user --net true 2>/dev/null; then
    unshare --user --map-root-user --net -- sh -c 'ip link set lo up 2>/dev/null; exec "$@"' sh "$@"
  else
    env http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 \
      HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 \
      npm_config_registry=http://127.0.0.1:9/ PIP_INDEX_URL=http://127.0.0.1:9/ \
      CARGO_NET_OFFLINE=true "$@"
  fi
}

# use_loopback_npm_registry SCRIPT DIR WORK: serves the npm tarballs in DIR on a free
# loopback port with SCRIPT (a copy of scripts/release/npm-registry.js), points npm at it
# alone — a cache under WORK, no audit, fund or update check, the registry reached past any
# proxy — and stops it when the calling shell exits. For the release checks' clean places.
use_loopback_npm_registry() {
  local script=$1 tarballs=$2 work=$3
  node "$script" "$tarballs" "$work/port" &
  PCI_VAULT_NPM_REGISTRY_PID=$!
  on_exit "kill $PCI_VAULT_NPM_REGISTRY_PID 2>/dev/null; wait $PCI_VAULT_NPM_REGISTRY_PID 2>/dev/null"
  for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.05; done
  [ -s "$work/port" ] || die "the loopback registry did not start"
  npm_config_registry="http://127.0.0.1:$(cat "$work/port")/"
  export npm_config_registry
  export npm_config_cache="$work/npm-cache" npm_config_audit=false npm_config_fund=false
  export npm_config_update_notifier=false
  # Where `offline` works by pointing proxies at a closed port: the loopback registry is
  # reached directly.
  export NO_PROXY=127.0.0.1 no_proxy=127.0.0.1 npm_config_noproxy=127.0.0.1
}

# moto_venv: a venv under .test-run/ with moto's AWS server, from the pinned
# backends/aws-kms/tests/requirements-moto.txt; sets MOTO_SERVER to its moto_server.
moto_venv() {
  ensure_command python3 python3
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3-venv
    python3 -c 'import venv, ensurepip' || die "python3 cannot create a venv"
  fi
  local venv=.test-run/moto-venv requirements=backends/aws-kms/tests/requirements-moto.txt
  step "moto venv ($venv) from $requirements"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  if ! cmp -s "$requirements" "$venv/requirements.txt"; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/requirements.txt"
  fi
  MOTO_SERVER="$PWD/$venv/bin/moto_server"
}

# start_moto NAME LOGDIR [VAR=VALUE...]: starts moto_server (see moto_venv) on a free
# loopback port with the given environment, logging to LOGDIR/moto-NAME.log; waits until it
# accepts connections, stops it by PID when the calling shell exits, and sets moto_port.
start_moto() {
  local name=$1 logdir=$2 port pid
  shift 2
  [ -n "${MOTO_SERVER:-}" ] || moto_venv
  port=$(free_port)
  step "moto server ($name) on 127.0.0.1:$port"
  env "$@" "$MOTO_SERVER" -H 127.0.0.1 -p "$port" >"$logdir/moto-$name.log" 2>&1 &
  pid=$!
  on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null || true"
  for _ in $(seq 1 100); do
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' \
      "$port" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || die "moto_server ($name) exited: $(cat "$logdir/moto-$name.log")"
    sleep 0.1
  done
  python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' \
    "$port" 2>/dev/null || die "moto_server ($name) did not start on port $port"
  moto_port=$port
}

# key_custody WORK SERVER: the keys of a vault in an HSM and in AWS KMS, for the bindings'
# tests — a SoftHSM2 token in WORK whose primary key `k1` SERVER (a pci-vault-server binary)
# creates with `hsm-create-key`, and a KMS key in a moto server on loopback. Exports their
# key-source strings as PCI_VAULT_TEST_HSM_KEY_SOURCE and PCI_VAULT_TEST_KMS_KEY_SOURCE, and
# test credentials for moto (which accepts any; never real ones).
key_custody() {
  local work=$1 server=$2 module=/usr/lib/softhsm/libsofthsm2.so
  ensure_command softhsm2-util softhsm2
  [ -f "$module" ] || die "softhsm2 is installed but $module is missing"
  step "SoftHSM2 token in $work with the primary key k1 (pci-vault-server hsm-create-key)"
  mkdir -p "$work/tokens"
  printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$work/tokens" >"$work/softhsm2.conf"
  export SOFTHSM2_CONF="$work/softhsm2.conf"
  local pin
  pin=$(python3 -c 'import secrets; print(secrets.token_hex(8))')
  printf '%s\n' "$pin" >"$work/token-pin"
  softhsm2-util --init-token --free --label pci-vault-bindings --pin "$pin" \
    --so-pin "$(python3 -c 'import secrets; print(secrets.token_hex(8))')" >/dev/null
  export PCI_VAULT_TEST_HSM_KEY_SOURCE="pkcs11:module=$module;token=pci-vault-bindings;key=k1;pin-file=$work/token-pin"
  "$server" hsm-create-key --key-source "$PCI_VAULT_TEST_HSM_KEY_SOURCE" >/dev/null \
    || die "pci-vault-server hsm-create-key failed"

  start_moto kms "$work"
  export AWS_ACCESS_KEY_ID=pci-vault-test AWS_SECRET_ACCESS_KEY=pci-vault-test
  unset AWS_SESSION_TOKEN AWS_PROFILE
  local key
  key=$(python3 - "http://127.0.0.1:$moto_port" <<'PY'
import json, sys, urllib.request
request = urllib.request.Request(sys.argv[1] + "/", method="POST", data=b'{"Description": "pci-vault bindings"}', headers={
    "Content-Type": "application/x-amz-json-1.1",
    "X-Amz-Target": "TrentService.CreateKey",
    # moto checks no signature; the scope names the service it routes to.
    "Authorization": "AWS4-HMAC-SHA256 Credential=pci-vault-test/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0",
})
print(json.load(urllib.request.urlopen(request, timeout=10))["KeyMetadata"]["KeyId"])
PY
  ) || die "moto did not create a KMS key"
  export PCI_VAULT_TEST_KMS_KEY_SOURCE="aws-kms:key=$key;region=us-east-1;endpoint=http://127.0.0.1:$moto_port"
}
