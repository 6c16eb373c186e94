#!/usr/bin/env python3
"""Run `gatehouse check` on the config exactly as a rendered Deployment would see it.

    check-config.py RENDERED.yaml --binary PATH/TO/gatehouse [--workdir DIR]

From the rendered manifests it takes the gateway container of Deployment `gatehouse` and:
  * rebuilds its config volume (the projected ConfigMap + Secret items) in a temporary directory,
    standing in for the volume's mountPath (/etc/gatehouse): ConfigMap items with their rendered
    content; Secret items from a rendered Secret when there is one (dev overlay), else placeholders
    (*.crt / *.key: the example self-signed pair config/examples/certs/example.{crt,key}, so the
    TLS files exist and parse);
  * rewrites the mountPath prefix in the config text to that directory (gatehouse resolves paths as
    written; `check` reads the certificate files, so they must exist);
  * builds the environment the kubelet would: literal `value`s with $(VAR) expanded from earlier
    variables, secretKeyRef values from a rendered Secret or a placeholder (a valid 32-byte base64
    string, acceptable as COOKIE_KEY), fieldRef as a dummy; nothing else from the caller's env;
  * runs `gatehouse check --config <dir>/gatehouse.yaml` in that directory and exits with its status.
Upstream DNS names are not resolved by `check`, so cluster-only names are fine.
"""

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLACEHOLDER = base64.b64encode(b"validate-placeholder-32-bytes!!!").decode()  # 32 bytes
EXAMPLE_CERT = os.path.join(ROOT, "config", "examples", "certs", "example.crt")
EXAMPLE_KEY = os.path.join(ROOT, "config", "examples", "certs", "example.key")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rendered")
    ap.add_argument("--binary", required=True)
    ap.add_argument("--workdir")
    args = ap.parse_args()

    with open(args.rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "gatehouse")
    pod = dep["spec"]["template"]["spec"]
    ctr = next(c for c in pod["containers"] if c["name"] == "gatehouse")
    argv = ctr.get("args", [])
    config_path = argv[argv.index("--config") + 1]

    def secret_value(name, key):
        s = secrets.get(name)
        if s is None:
            return None
        if key in (s.get("stringData") or {}):
            return s["stringData"][key].encode()
        if key in (s.get("data") or {}):
            return base64.b64decode(s["data"][key])
        return None

    work = args.workdir or tempfile.mkdtemp(prefix="gatehouse-k8s-check-")
    os.makedirs(work, exist_ok=True)
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = []
    for m in ctr.get("volumeMounts", []):
        v = vols[m["name"]]
        if m["mountPath"] == "/tmp" or "emptyDir" in v:
            continue
        target = os.path.join(work, m["name"])
        os.makedirs(target, exist_ok=True)
        sources = v["projected"]["sources"] if "projected" in v else [v]
        for src in sources:
            if "configMap" in src:
                cm = configmaps[src["configMap"]["name"]]
                items = src["configMap"].get("items") or [{"key": k, "path": k} for k in cm["data"]]
                for it in items:
                    path = os.path.join(target, it["path"])
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "w") as f:
                        f.write(cm["data"][it["key"]])
            elif "secret" in src:
                name = src["secret"].get("name") or src["secret"].get("secretName")
                for it in src["secret"].get("items") or []:
                    path = os.path.join(target, it["path"])
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    value = secret_value(name, it["key"])
                    if value is not None:
                        with open(path, "wb") as f:
                            f.write(value)
                    elif it["key"].endswith(".crt"):
                        shutil.copyfile(EXAMPLE_CERT, path)
                    elif it["key"].endswith(".key"):
                        shutil.copyfile(EXAMPLE_KEY, path)
                    else:
                        with open(path, "w") as f:
                            f.write(PLACEHOLDER)
        mounts.append((m["mountPath"].rstrip("/") + "/", target + "/"))

    # The config file as the container sees it, with every mount prefix pointed at the copies.
    mounts.sort(key=lambda p: -len(p[0]))
    local_config = next(
        (t + config_path[len(mp):] for mp, t in mounts if config_path.startswith(mp)), None
    )
    if local_config is None:
        print(f"check-config: {config_path} is not on a volume of the container", file=sys.stderr)
        return 1
    with open(local_config) as f:
        text = f.read()
    for mp, t in mounts:
        text = text.replace(mp, t)
    checked = os.path.join(work, "gatehouse.yaml")
    with open(checked, "w") as f:
        f.write(text)

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for e in ctr.get("env", []):
        if "value" in e:
            env[e["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), str(e["value"])
            )
        elif "secretKeyRef" in e.get("valueFrom", {}):
            ref = e["valueFrom"]["secretKeyRef"]
            value = secret_value(ref["name"], ref["key"])
            # A placeholder per key: distinct secrets stay distinct (two tenants sharing one
            # cookie key is a warning the shipped config must not draw).
            placeholder = base64.b64encode(hashlib.sha256(ref["key"].encode()).digest()).decode()
            env[e["name"]] = value.decode() if value is not None else placeholder
        else:
            env[e["name"]] = "placeholder"
    print(f"check-config: {checked} (from {config_path}), env {', '.join(sorted(k for k in env if k != 'PATH'))}")
    result = subprocess.run([args.binary, "check", "--config", checked], cwd=work, env=env)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
