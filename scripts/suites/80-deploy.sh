#!/usr/bin/env bash
# The deployment artefacts of deploy/, used the way an operator uses them:
#   1. the OCI image: deploy/image/stage.sh fills the build context from the release binary,
#      buildah builds deploy/image/Containerfile (FROM scratch: nothing is pulled) and writes
#      an OCI archive;
#   2. the server runs from that image — with podman (read-only root, no capability, uid
#      65532), or, where this machine cannot run containers, from the image's root filesystem
#      unpacked into a temporary directory — against a Redis primary and a replica on
#      loopback configured as deploy/kubernetes/redis (ACL users, no persistence,
#      noeviction), with the keyring and the API keys in files laid out as kubelet lays out a
#      Secret volume; deploy/smoke.py walks the whole flow; Redis' script cache is flushed
#      (a restart) and the ACL user loads the scripts again; the keyring is rotated by the
#      symlink swap kubelet does and a session sealed under the old key still opens; SIGTERM
#      stops the server cleanly and no secret is in its log;
#   3. the Kubernetes manifests (the base, Redis, the production overlay and its AWS KMS
#      variant) render with kustomize, validate against the Kubernetes JSON schemas
#      (kubernetes-validate, pinned) and pass deploy/kubernetes/check.py;
#   4. the systemd unit passes `systemd-analyze verify`, and `systemd-analyze security`
#      rates it at most 2.0;
#   5. the Prometheus alert rules pass `promtool check rules` and their unit tests.
# Server options newer than this suite's first version (--api-keys-file, --audit-key-file,
# --admin-listen, --trusted-proxies, timeouts, --max-connections) are used when the image's
# binary lists them in --help; otherwise the older equivalent is used and the suite says so.
# PCI_VAULT_DEPLOY_RUNTIME=podman|rootfs forces how the image is run;
# PCI_VAULT_DEPLOY_SERVER_BIN=PATH puts that binary in the image instead of the release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

logs="${PCI_VAULT_TEST_LOGS:-$PWD/.test-run/logs}"
mkdir -p "$logs" .test-run/seen-pins
work="$PWD/.test-run/deploy"
mkdir -p "$work"
tmp=$(mktemp -d)
# Image storage of this suite only, so nothing of the machine's own storage is touched.
storage=(--root "$work/containers/storage" --runroot "$work/containers/run" --storage-driver vfs)
pids=()
container=""
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  # A container podman did not remove (podman itself ended early) goes too.
  if [ -n "$container" ]; then
    podman_cmd rm --force --ignore "$container" >/dev/null 2>&1 || true
  fi
  # The image lives on in the OCI archive; its copy in the suite's storage goes.
  if command -v buildah >/dev/null 2>&1; then
    buildah "${storage[@]}" rmi --all --force >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- 1. the image ---------------------------------------------------------------------
if [ -n "${PCI_VAULT_DEPLOY_SERVER_BIN:-}" ]; then
  binary=$PCI_VAULT_DEPLOY_SERVER_BIN
  step "image of $binary (PCI_VAULT_DEPLOY_SERVER_BIN)"
else
  step "build pci-vault-server (release)"
  cargo build -p pci-vault-server --release --locked
  binary="$PWD/target/release/pci-vault-server"
fi

ensure_command buildah buildah
ensure_command objcopy binutils
podman_cmd() {
  # runc and cgroupfs: crun refuses a host with hybrid cgroups, as CI machines have.
  podman "${storage[@]}" --runtime runc --cgroup-manager cgroupfs "$@"
}

step "image: stage the root filesystem and build it with buildah (FROM scratch)"
context="$tmp/context"
bash deploy/image/stage.sh "$binary" "$context"
tag="localhost/pci-vault-server:test"
archive="$work/pci-vault-server.oci.tar"
buildah "${storage[@]}" bud --quiet --layers=false -f deploy/image/Containerfile -t "$tag" "$context" >/dev/null
rm -f "$archive"
buildah "${storage[@]}" push --quiet "$tag" "oci-archive:$archive:$tag"
buildah "${storage[@]}" rmi --force "$tag" >/dev/null
echo "OCI archive: $archive ($(du -h "$archive" | cut -f1))"

# The image holds what stage.sh put there and nothing else: no shell, and the user is
# not root.
python3 - "$archive" "$tmp/image-rootfs" <<'EOF'
import json, sys, tarfile
archive, dest = sys.argv[1], sys.argv[2]
with tarfile.open(archive) as oci:
    blob = lambda digest: oci.extractfile("blobs/sha256/" + digest.split(":", 1)[1])
    index = json.load(oci.extractfile("index.json"))
    manifest = json.load(blob(index["manifests"][0]["digest"]))
    config = json.load(blob(manifest["config"]["digest"]))
    assert config["config"]["User"] == "65532:65532", config["config"].get("User")
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/pci-vault-server"]
    for layer in manifest["layers"]:
        with tarfile.open(fileobj=blob(layer["digest"]), mode="r:*") as t:
            t.extractall(dest, filter="tar")
EOF
image_rootfs="$tmp/image-rootfs"
for path in usr/local/bin/pci-vault-server lib64/ld-linux-x86-64.so.2 etc/passwd \
  etc/ssl/certs/ca-certificates.crt; do
  [ -e "$image_rootfs/$path" ] || die "the image lacks /$path"
done
for path in bin/sh usr/bin/sh bin/bash; do
  [ ! -e "$image_rootfs/$path" ] || die "the image has a shell: /$path"
done
grep -q '^pci-vault:x:65532:65532:' "$image_rootfs/etc/passwd" || die "no passwd entry for 65532"
echo "image: runs as 65532, no shell, $(find "$image_rootfs" -type f | wc -l) files"

# --- 2. run it against Redis --------------------------------------------------------
runtime="${PCI_VAULT_DEPLOY_RUNTIME:-}"
if [ -z "$runtime" ] || [ "$runtime" = podman ]; then
  ensure_command podman podman
  ensure_command runc runc
  podman_cmd load --quiet --input "$archive" >/dev/null
  if podman_cmd run --rm --network host --ulimit "nofile=$(ulimit -n):$(ulimit -n)" \
    --ulimit "nproc=1024:1024" "$tag" --version >"$tmp/probe.log" 2>&1; then
    runtime=podman
  elif [ "${PCI_VAULT_DEPLOY_RUNTIME:-}" = podman ]; then
    cat "$tmp/probe.log"
    die "podman cannot run the image here"
  else
    echo "podman cannot run containers on this machine; running the unpacked image instead:"
    sed 's/^/  /' "$tmp/probe.log"
    runtime=rootfs
  fi
fi
[ "$runtime" = podman ] || [ "$runtime" = rootfs ] || die "PCI_VAULT_DEPLOY_RUNTIME is podman or rootfs"

# The image's server started from the unpacked root filesystem: its own loader and
# libraries, not the host's.
unpacked=("$image_rootfs/lib64/ld-linux-x86-64.so.2" --library-path "$image_rootfs/lib/x86_64-linux-gnu"
  "$image_rootfs/usr/local/bin/pci-vault-server")
if [ "$runtime" = podman ]; then
  podman_cmd run --rm --network host --ulimit "nofile=$(ulimit -n):$(ulimit -n)" \
    --ulimit "nproc=1024:1024" "$tag" --help >"$tmp/help.txt"
else
  "${unpacked[@]}" --help >"$tmp/help.txt"
fi
has_option() { grep -q -- "$1" "$tmp/help.txt"; }

secret() { python3 -c 'import secrets; print(secrets.token_hex(24))'; }
sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

step "Redis primary and replica on loopback, configured as deploy/kubernetes/redis"
ensure_command redis-server redis-server
ensure_command redis-cli redis-server
vault_password=$(secret)
replication_password=$(secret)
admin_password=$(secret)
redis_secret="$tmp/redis-secret"
mkdir -p "$redis_secret"
# The Secret pci-vault-redis of docs/DEPLOYMENT.md, with an admin user for this test's
# own checks. The vault user gets exactly the commands of the pci-vault-redis README.
cat >"$redis_secret/users.acl" <<EOF
user default off
user vault on #$(sha256 "$vault_password") ~pci-vault:* resetchannels &pci-vault:* -@all +ping +get +set +getrange +del +evalsha +script|load +wait +publish +subscribe +unsubscribe
user replicator on #$(sha256 "$replication_password") resetchannels -@all +psync +replconf +ping
user test-admin on #$(sha256 "$admin_password") ~* &* +@all
EOF
printf 'masteruser replicator\nmasterauth %s\n' "$replication_password" >"$redis_secret/replication.conf"
# The same file with this test's paths: the Secret's directory, and `dir` from --dir.
sed -e "s#/etc/redis/secret/#$redis_secret/#g" -e '/^dir /d' deploy/kubernetes/redis/redis.conf >"$tmp/redis.conf"
# The test kit's flags (loopback, no persistence, noeviction) after the deployment's file.
mapfile -t redis_flags < <(python3 -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))["args"]))' \
  testkit/redis-flags.json)
primary_port=$(free_port)
replica_port=$(free_port)
mkdir -p "$tmp/primary" "$tmp/replica"
redis-server "$tmp/redis.conf" "${redis_flags[@]}" --port "$primary_port" --dir "$tmp/primary" \
  --logfile "$logs/deploy-redis-primary.log" &
pids+=($!)
redis-server "$tmp/redis.conf" "${redis_flags[@]}" --port "$replica_port" --dir "$tmp/replica" \
  --logfile "$logs/deploy-redis-replica.log" --replicaof 127.0.0.1 "$primary_port" &
pids+=($!)
rcli() {
  local port=$1
  shift
  REDISCLI_AUTH="$admin_password" redis-cli --no-auth-warning --user test-admin -p "$port" "$@"
}
for _ in $(seq 1 100); do
  rcli "$replica_port" info replication 2>/dev/null | grep -q '^master_link_status:up' && break
  sleep 0.1
done
rcli "$replica_port" info replication | grep -q '^master_link_status:up' \
  || die "the replica did not connect to the primary"
[ "$(rcli "$primary_port" config get maxmemory-policy | tail -1)" = noeviction ] || die "eviction is on"
[ "$(rcli "$primary_port" config get appendonly | tail -1)" = no ] || die "AOF is on"
[ -z "$(rcli "$primary_port" config get save | tail -1)" ] || die "RDB snapshots are on"
echo "primary :$primary_port, replica :$replica_port (linked), default user off"

step "secrets as kubelet mounts them: keyring, API keys, audit key"
# write_secret DIR NAME=VALUE...: a directory as kubelet writes a Secret volume: the files
# in a timestamped directory, `..data` pointing at it, and one symlink per key through
# `..data`. Run again on the same DIR it swaps `..data` atomically, as a rotation does.
write_secret() {
  local dir=$1 stamp name pair old=""
  shift
  mkdir -p "$dir"
  stamp="..$(date -u +%Y_%m_%d_%H_%M_%S).$RANDOM$RANDOM"
  mkdir "$dir/$stamp"
  for pair in "$@"; do
    printf '%s' "${pair#*=}" >"$dir/$stamp/${pair%%=*}"
  done
  chmod 0440 "$dir/$stamp"/*
  chmod 0755 "$dir/$stamp"
  [ -L "$dir/..data" ] && old=$(readlink "$dir/..data")
  ln -s "$stamp" "$dir/..data_tmp"
  mv -T "$dir/..data_tmp" "$dir/..data"
  for pair in "$@"; do
    name=${pair%%=*}
    [ -L "$dir/$name" ] || ln -s "..data/$name" "$dir/$name"
  done
  for name in "$dir"/*; do
    [ -e "$name" ] || rm -f "$name" # a key the new version no longer has
  done
  [ -z "$old" ] || rm -rf "${dir:?}/$old"
  if [ "$runtime" = podman ]; then chown -R 65532:65532 "$dir"; fi
}
key() { python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'; }
key1=$(key)
key2=$(key)
api_key=$(secret)
audit_key=$(key)
secrets_dir="$tmp/secrets"
write_secret "$secrets_dir/keys" primary=k1 "k1=$key1"
write_secret "$secrets_dir/api-keys" "api-keys=agent-desk:$api_key"
write_secret "$secrets_dir/audit" "audit-key=$audit_key"
chmod 0755 "$tmp" "$secrets_dir"

step "run the server from the image ($runtime)"
port=$(free_port)
admin_port=$(free_port)
public_url="http://127.0.0.1:$port"
if [ "$runtime" = podman ]; then
  in_secrets=/etc/pci-vault
else
  in_secrets="$secrets_dir"
fi
# Only what this suite sets reaches the server: no setting of the caller's environment.
while read -r variable; do
  case "$variable" in
    PCI_VAULT_TEST_* | PCI_VAULT_DEPLOY_* | PCI_VAULT_APT_*) ;;
    PCI_VAULT_*) unset "$variable" ;;
  esac
done < <(compgen -e)
args=(--listen "127.0.0.1:$port" --public-url "$public_url" --keys-file "$in_secrets/keys"
  --log-format json --shutdown-grace 5)
export PCI_VAULT_STORE="redis://vault:$vault_password@127.0.0.1:$primary_port"
admin_url="$public_url"
newer=()
older=()
if has_option --api-keys-file; then
  args+=(--api-keys-file "$in_secrets/api-keys/api-keys")
  newer+=(--api-keys-file)
else
  # The older equivalent: the keys of the file, without their labels, in the environment.
  PCI_VAULT_API_KEYS=$(cut -d: -f2- "$secrets_dir/api-keys/api-keys" | paste -sd,)
  export PCI_VAULT_API_KEYS
  older+=("--api-keys-file (PCI_VAULT_API_KEYS from the file)")
fi
if has_option --audit-key-file; then
  args+=(--audit-key-file "$in_secrets/audit/audit-key")
  newer+=(--audit-key-file)
else
  older+=("--audit-key-file (a random audit key per process)")
fi
if has_option --admin-listen; then
  args+=(--admin-listen "127.0.0.1:$admin_port")
  admin_url="http://127.0.0.1:$admin_port"
  newer+=(--admin-listen)
else
  older+=("--admin-listen (health and metrics on the main port)")
fi
if has_option --trusted-proxies; then
  args+=(--trusted-proxies 127.0.0.1/32)
  newer+=(--trusted-proxies)
else
  older+=("--trusted-proxies")
fi
for option in --body-timeout-seconds=10 --request-timeout-seconds=30 --max-connections=256; do
  if has_option "${option%%=*}"; then
    args+=("$option")
    newer+=("${option%%=*}")
  else
    older+=("${option%%=*}")
  fi
done
echo "options in use: ${newer[*]:-none of the newer ones}"
[ "${#older[@]}" -eq 0 ] || echo "not in this binary yet (older equivalent used): ${older[*]}"

server_log="$logs/deploy-server.log"
if [ "$runtime" = podman ]; then
  container="pci-vault-deploy-test-$$"
  # As Kubernetes runs it: read-only root, no capability, no privilege gain, uid 65532,
  # the Secrets mounted read-only.
  podman_cmd run --rm --name "$container" --network host --read-only --cap-drop ALL \
    --security-opt no-new-privileges --user 65532:65532 \
    --ulimit "nofile=$(ulimit -n):$(ulimit -n)" --ulimit "nproc=1024:1024" \
    --env PCI_VAULT_STORE ${PCI_VAULT_API_KEYS:+--env PCI_VAULT_API_KEYS} \
    --volume "$secrets_dir/keys:/etc/pci-vault/keys:ro" \
    --volume "$secrets_dir/api-keys:/etc/pci-vault/api-keys:ro" \
    --volume "$secrets_dir/audit:/etc/pci-vault/audit:ro" \
    "$tag" "${args[@]}" >"$server_log" 2>&1 &
else
  "${unpacked[@]}" "${args[@]}" >"$server_log" 2>&1 &
fi
server_pid=$!
pids+=("$server_pid")
for _ in $(seq 1 200); do
  curl -fsS -o /dev/null "$admin_url/readyz" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$server_log"; die "the server exited at start"; }
  sleep 0.1
done
curl -fsS -o /dev/null "$admin_url/readyz" || { cat "$server_log"; die "the server did not get ready"; }
if grep -q 'development' "$server_log"; then
  cat "$server_log"
  die "the server fell back to a development key or API key"
fi

step "the whole flow through the image: deploy/smoke.py"
seen_pins="$PWD/.test-run/seen-pins/80-deploy.txt"
smoke=(python3 deploy/smoke.py --base "$public_url" --api-key-file "$secrets_dir/api-keys/api-keys"
  --seen-pins "$seen_pins")
"${smoke[@]}" flow --admin "$admin_url"
if has_option --admin-listen; then
  status=$(curl -s -o /dev/null -w '%{http_code}' "$public_url/metrics")
  [ "$status" = 404 ] || die "/metrics is served on the public listener ($status) with --admin-listen"
  echo "  ok  /metrics only on the admin listener"
fi
# Every write reached the replica: the primary's keys are on the replica too.
for _ in $(seq 1 50); do
  [ "$(rcli "$replica_port" dbsize)" = "$(rcli "$primary_port" dbsize)" ] && break
  sleep 0.1
done
keys_on_primary=$(rcli "$primary_port" dbsize)
[ "$keys_on_primary" -gt 0 ] || die "no session reached Redis"
[ "$(rcli "$replica_port" dbsize)" = "$keys_on_primary" ] || die "the replica lags behind the primary"
echo "  ok  $keys_on_primary key(s) on the primary, the same on the replica"

step "key rotation: kubelet's symlink swap, a session sealed under the old key still opens"
# As after a Redis restart or failover, the server's scripts are gone: the vault user's ACL
# must let it load them again (SCRIPT LOAD), with no EVAL.
rcli "$primary_port" script flush >/dev/null
"${smoke[@]}" submit --state "$tmp/before-rotation.json"
write_secret "$secrets_dir/keys" primary=k2 "k1=$key1" "k2=$key2"
# The server checks the keyring files at most every 10 s when it uses a key.
sleep 11
"${smoke[@]}" submit --state "$tmp/after-rotation.json"
grep -q '"reloaded the keyring"' "$server_log" || die "the server did not reload the rotated keyring"
grep '"reloaded the keyring"' "$server_log" | grep -q '"primary":"k2"' \
  || die "the reloaded keyring's primary is not k2"
"${smoke[@]}" reveal --state "$tmp/before-rotation.json"
"${smoke[@]}" reveal --state "$tmp/after-rotation.json"
echo "  ok  rotated to k2 without a restart; the k1 session opened"

step "stop the server (SIGTERM) and check its log"
curl -fsS -o /dev/null "$admin_url/healthz"
if [ "$runtime" = podman ]; then
  # To the server in the container (podman's own SIGTERM would end podman first).
  podman_cmd kill --signal TERM "$container" >/dev/null
else
  kill -TERM "$server_pid"
fi
status=0
wait "$server_pid" || status=$?
pids=("${pids[@]/$server_pid/}")
[ "$status" -eq 0 ] || { tail -20 "$server_log"; die "the server exited with $status after SIGTERM"; }
grep -q '"stopped"' "$server_log" || die "the server did not log its shutdown"
for value in "$key1" "$key2" "$api_key" "$audit_key" "$vault_password"; do
  if grep -qF -- "$value" "$server_log"; then die "a secret is in the server's log"; fi
done
if grep -qiE 'lacks a permission|NOPERM' "$server_log"; then
  die "the vault's Redis ACL user lacks a permission"
fi
echo "  ok  clean exit; no key, API key, audit key or Redis password in the log"

# --- 3. Kubernetes manifests ----------------------------------------------------------
step "Kubernetes: render with kustomize, validate against the schemas"
if command -v kustomize >/dev/null 2>&1; then
  render=(kustomize build)
elif command -v kubectl >/dev/null 2>&1; then
  render=(kubectl kustomize)
else
  die "neither kustomize nor kubectl (which embeds kustomize) is installed; install one"
fi
validate_version=1.37.0
venv="$work/venv"
if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qF "$validate_version"; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    apt_install python3-venv
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$validate_version"
fi
for target in base redis overlays/production overlays/aws-kms overlays/webhooks; do
  out="$work/kubernetes-$(echo "$target" | tr / -).yaml"
  "${render[@]}" "deploy/kubernetes/$target" >"$out"
  for version in 1.29.0 1.37.0; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$out" \
      || die "deploy/kubernetes/$target does not validate against Kubernetes $version"
  done
  echo "  ok  deploy/kubernetes/$target: $(grep -c '^kind:' "$out") objects valid for Kubernetes 1.29 and 1.37"
done
# The validator is not a rubber stamp: an unknown field fails.
printf 'apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  portz: []\n' >"$tmp/bad.yaml"
if "$venv/bin/kubernetes-validate" --strict --quiet -k 1.37.0 "$tmp/bad.yaml" >/dev/null 2>&1; then
  die "kubernetes-validate accepted an unknown field"
fi
"$venv/bin/python" deploy/kubernetes/check.py "$work/kubernetes-overlays-production.yaml"
"$venv/bin/python" deploy/kubernetes/check.py "$work/kubernetes-overlays-aws-kms.yaml"
"$venv/bin/python" deploy/kubernetes/check.py "$work/kubernetes-overlays-webhooks.yaml"
# The webhooks overlay without its egress policy fails the check: deliveries would fail.
python3 - "$work/kubernetes-overlays-webhooks.yaml" >"$tmp/no-webhook-egress.yaml" <<'PY'
import sys
docs = open(sys.argv[1]).read().split("\n---\n")
print("\n---\n".join(d for d in docs if "name: pci-vault-server-webhooks" not in d))
PY
grep -q -- "--webhooks-file" "$tmp/no-webhook-egress.yaml" || die "could not make the no-egress example"
if "$venv/bin/python" deploy/kubernetes/check.py "$tmp/no-webhook-egress.yaml" >/dev/null 2>&1; then
  die "deploy/kubernetes/check.py accepted webhooks without egress to 443"
fi
# Nor is the policy check: the KMS overlay without its IAM role fails it.
sed 's|eks.amazonaws.com/role-arn:|example.com/not-a-role:|' "$work/kubernetes-overlays-aws-kms.yaml" >"$tmp/no-role.yaml"
if "$venv/bin/python" deploy/kubernetes/check.py "$tmp/no-role.yaml" >/dev/null 2>&1; then
  die "deploy/kubernetes/check.py accepted AWS KMS without an IAM role"
fi
# ... nor with a static AWS key in the ConfigMap, which would win over the role.
sed 's|^  PCI_VAULT_KEY_SOURCE:|  AWS_ACCESS_KEY_ID: AKIAEXAMPLE\n  PCI_VAULT_KEY_SOURCE:|' \
  "$work/kubernetes-overlays-aws-kms.yaml" >"$tmp/static-key.yaml"
grep -q AKIAEXAMPLE "$tmp/static-key.yaml" || die "could not make the static-key example"
if "$venv/bin/python" deploy/kubernetes/check.py "$tmp/static-key.yaml" >/dev/null 2>&1; then
  die "deploy/kubernetes/check.py accepted a static AWS key beside the role"
fi

# --- 4. systemd -----------------------------------------------------------------------
step "systemd unit: systemd-analyze verify and security"
ensure_command systemd-analyze systemd
# --threshold counts tenths: 20 is an exposure of 2.0 ("OK" goes up to 4.9).
# A root with the unit, the binary it starts and systemd's own units, so nothing is
# installed on this machine.
sdroot="$tmp/systemd-root"
mkdir -p "$sdroot/etc/systemd/system" "$sdroot/usr/local/bin" "$sdroot/usr/lib/systemd" "$sdroot/tmp"
cp deploy/systemd/pci-vault-server.service "$sdroot/etc/systemd/system/"
cp "$image_rootfs/usr/local/bin/pci-vault-server" "$sdroot/usr/local/bin/"
cp -a "$(dirname "$(command -v systemctl)")/../lib/systemd/system" "$sdroot/usr/lib/systemd/" 2>/dev/null \
  || cp -a /lib/systemd/system "$sdroot/usr/lib/systemd/"
systemd-analyze verify --root="$sdroot" --man=no --recursive-errors=no \
  /etc/systemd/system/pci-vault-server.service
systemd-analyze security --offline=yes --root="$sdroot" --threshold=20 \
  /etc/systemd/system/pci-vault-server.service >"$tmp/security.txt" 2>&1 \
  || { cat "$tmp/security.txt"; die "systemd-analyze security rates the unit above 2.0"; }
echo "  ok  verified; $(grep -o 'Overall exposure level.*' "$tmp/security.txt")"

# --- 5. alert rules -------------------------------------------------------------------
step "Prometheus alert rules: promtool check rules and test rules"
ensure_command promtool prometheus
promtool check rules deploy/monitoring/alerts.yaml
(cd deploy/monitoring && promtool test rules alerts.test.yaml)
