#!/usr/bin/env python3
"""Checks rendered pci-vault manifests against the rules the deployment relies on, beyond
what the Kubernetes schemas say:

  - every pod: no service account token, runAsNonRoot, seccomp RuntimeDefault; every
    container: no privilege escalation, read-only root filesystem, all capabilities dropped,
    CPU and memory requests and a memory limit, readiness and liveness probes;
  - no Secret is mounted with subPath (kubelet never updates such a mount: a rotated key
    would not reach the server);
  - the server's probes use the admin port (/readyz, /healthz), its Service does not
    expose that port, a PodDisruptionBudget and a NetworkPolicy (ingress and egress) select
    it, and its keyring is a mounted Secret; with AWS KMS or a webhooks file, a
    NetworkPolicy lets it out on 443;
  - Redis, when present: no persistence, noeviction, an ACL file, the default user not
    configured in the file, and a NetworkPolicy.

Usage: check.py RENDERED.yaml   (the output of `kustomize build`; needs PyYAML)
"""

import sys

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet"}


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).get("matchLabels", {}).items())


def env_of(container, by_kind):
    """The container's environment as Kubernetes assembles it: envFrom in order (a later
    source wins), then env. A value from a Secret (or a valueFrom reference) counts as set,
    with None for its value: its text is not in the manifests."""
    found = {}
    for ref in container.get("envFrom", []):
        prefix = ref.get("prefix", "")
        if "configMapRef" in ref:
            for cm in by_kind.get("ConfigMap", []):
                if cm["metadata"]["name"] == ref["configMapRef"].get("name"):
                    for k, v in (cm.get("data") or {}).items():
                        found[prefix + k] = v
        if "secretRef" in ref:
            for secret in by_kind.get("Secret", []):
                if secret["metadata"]["name"] == ref["secretRef"].get("name"):
                    for k in list((secret.get("data") or {})) + list((secret.get("stringData") or {})):
                        found[prefix + k] = None
    for e in container.get("env", []):
        found[e["name"]] = e.get("value")
    return found


def egress_to_443(by_kind, labels):
    """Whether a NetworkPolicy selecting the pods of `labels` allows egress on 443."""
    return any(selects(n["spec"]["podSelector"], labels)
               and any(p.get("port") == 443 for r in n["spec"].get("egress", [])
                       for p in r.get("ports", []))
               for n in by_kind.get("NetworkPolicy", []))


def key_source(container, args, env):
    """The key-source string the server container gets (--key-source, or
    PCI_VAULT_KEY_SOURCE from its environment), or None."""
    for i, a in enumerate(args):
        if a.startswith("--key-source="):
            return a.split("=", 1)[1]
        if a == "--key-source" and i + 1 < len(args):
            return args[i + 1]
    return env.get("PCI_VAULT_KEY_SOURCE")


def main(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    problems = []

    def need(condition, text):
        if not condition:
            problems.append(text)

    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)

    server = None
    for w in (d for d in docs if d["kind"] in WORKLOADS):
        name = f'{w["kind"]}/{w["metadata"]["name"]}'
        pod = w["spec"]["template"]["spec"]
        labels = w["spec"]["template"]["metadata"].get("labels", {})
        psc = pod.get("securityContext", {})
        need(pod.get("automountServiceAccountToken") is False,
             f"{name}: automountServiceAccountToken is not false")
        need(psc.get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot is not true")
        need(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
             f"{name}: seccompProfile is not RuntimeDefault")
        secret_volumes = {v["name"] for v in pod.get("volumes", []) if "secret" in v}
        for c in pod.get("initContainers", []) + pod["containers"]:
            cname = f'{name} container {c["name"]}'
            sc = c.get("securityContext", {})
            need(sc.get("allowPrivilegeEscalation") is False,
                 f"{cname}: allowPrivilegeEscalation is not false")
            need(sc.get("readOnlyRootFilesystem") is True,
                 f"{cname}: readOnlyRootFilesystem is not true")
            need("ALL" in sc.get("capabilities", {}).get("drop", []),
                 f"{cname}: capabilities do not drop ALL")
            need(not sc.get("capabilities", {}).get("add"), f"{cname}: adds capabilities")
            need(sc.get("privileged") in (None, False), f"{cname}: privileged")
            res = c.get("resources", {})
            for kind in ("cpu", "memory"):
                need(kind in res.get("requests", {}), f"{cname}: no {kind} request")
            need("memory" in res.get("limits", {}), f"{cname}: no memory limit")
            need("readinessProbe" in c, f"{cname}: no readiness probe")
            need("livenessProbe" in c, f"{cname}: no liveness probe")
            for m in c.get("volumeMounts", []):
                if m["name"] in secret_volumes:
                    need("subPath" not in m,
                         f"{cname}: Secret volume {m['name']} mounted with subPath (never updated)")
                    need(m.get("readOnly") is True,
                         f"{cname}: Secret volume {m['name']} is not read-only")
        if labels.get("app.kubernetes.io/name") == "pci-vault-server":
            server = (w, labels)

    need(server is not None, "no pci-vault-server workload")
    if server:
        w, labels = server
        pod = w["spec"]["template"]["spec"]
        c = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        need("admin" in ports, "server: no admin port")
        need(c["readinessProbe"].get("httpGet", {}).get("path") == "/readyz"
             and c["readinessProbe"]["httpGet"].get("port") == "admin",
             "server: readiness is not /readyz on the admin port")
        need(c["livenessProbe"].get("httpGet", {}).get("path") == "/healthz"
             and c["livenessProbe"]["httpGet"].get("port") == "admin",
             "server: liveness is not /healthz on the admin port")
        args = c.get("args", [])
        keys = [a.split("=", 1)[1] for a in args if a.startswith("--keys-file=")]
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        secret_volumes = {v["name"] for v in pod.get("volumes", []) if "secret" in v}
        env = env_of(c, by_kind)
        source = key_source(c, args, env)
        if source is None:
            need(keys and mounts.get(keys[0]) in secret_volumes,
                 "server: --keys-file is not a mounted Secret directory")
        else:
            need(not keys, "server: both --keys-file and a key source (the server refuses both)")
            need(source.startswith(("aws-kms:", "pkcs11:")),
                 "server: a key source other than aws-kms: or pkcs11: (keys belong in a Secret)")
            if source.startswith("aws-kms:"):
                account = next((a for a in by_kind.get("ServiceAccount", [])
                                if a["metadata"]["name"] == pod.get("serviceAccountName")), None)
                need(account is not None and "eks.amazonaws.com/role-arn"
                     in (account["metadata"].get("annotations") or {}),
                     "server: AWS KMS without an IAM role on its service account (IRSA)")
                need(not any(name in env for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                      "AWS_SESSION_TOKEN", "AWS_SHARED_CREDENTIALS_FILE")),
                     "server: static AWS credentials in the environment (they win over the role)")
                need(egress_to_443(by_kind, labels),
                     "server: AWS KMS without egress to 443 in a NetworkPolicy")
        # Without egress every delivery fails, and only the metrics would say so.
        webhooks = any(a == "--webhooks-file" or a.startswith("--webhooks-file=") for a in args)
        if webhooks or env.get("PCI_VAULT_WEBHOOKS_FILE"):
            need(egress_to_443(by_kind, labels),
                 "server: a webhooks file without egress to 443 in a NetworkPolicy "
                 "(components/webhooks adds it)")
        for option in ("--api-keys-file=", "--audit-key-file=", "--admin-listen="):
            need(any(a.startswith(option) for a in args), f"server: no {option[:-1]}")
        for svc in by_kind.get("Service", []):
            if selects({"matchLabels": svc["spec"].get("selector", {})}, labels):
                targets = {p.get("targetPort") for p in svc["spec"]["ports"]}
                need("admin" not in targets and ports.get("admin") not in targets,
                     f'Service/{svc["metadata"]["name"]} exposes the admin port')
        need(any(selects(p["spec"]["selector"], labels)
                 for p in by_kind.get("PodDisruptionBudget", [])),
             "server: no PodDisruptionBudget")
        need(any(selects(n["spec"]["podSelector"], labels)
                 and set(n["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
                 for n in by_kind.get("NetworkPolicy", [])),
             "server: no NetworkPolicy restricting ingress and egress")

    redis_configs = [cm for cm in by_kind.get("ConfigMap", []) if "redis.conf" in cm.get("data", {})]
    for cm in redis_configs:
        lines = [line.split("#")[0].split() for line in cm["data"]["redis.conf"].splitlines()]
        settings = {line[0]: line[1:] for line in lines if line}
        need(settings.get("save") == ['""'], "redis.conf: save is not \"\" (persistence)")
        need(settings.get("appendonly") == ["no"], "redis.conf: appendonly is not no")
        need(settings.get("maxmemory-policy") == ["noeviction"], "redis.conf: eviction is on")
        need("maxmemory" in settings, "redis.conf: no maxmemory")
        need("aclfile" in settings, "redis.conf: no ACL file")
        need(any(n["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
                 == "redis" for n in by_kind.get("NetworkPolicy", [])),
             "redis: no NetworkPolicy")

    for ns in by_kind.get("Namespace", []):
        need(ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce")
             == "restricted", f'Namespace/{ns["metadata"]["name"]}: Pod Security is not restricted')

    for p in problems:
        print(f"FAILED: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"  ok  {path}: {len(docs)} objects follow the deployment's rules")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
