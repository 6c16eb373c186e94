#!/usr/bin/env python3
"""Assert the production invariants on rendered Kubernetes manifests (needs PyYAML).

    invariants.py RENDERED.yaml [--secret-template deploy/k8s/base/secret.example.yaml]
                  [--readme deploy/README.md] [--alerts deploy/prometheus/alerting-rules.yml]
                  [--count-file FILE]

Prints one line per check (`ok` / `FAIL` with the reason) and exits 1 if any failed. With
--count-file, writes "<passed> <failed>" there for validate.sh's total.
"""

import argparse
import re
import sys

import yaml


def parse_duration(text):
    """Seconds of a gatehouse duration (`30s`, `1h30m`, `250ms`, a bare integer = seconds)."""
    text = str(text).strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    total = 0.0
    pos = 0
    for m in re.finditer(r"(\d+)(ms|s|m|h|d)", text):
        if m.start() != pos:
            raise ValueError(f"invalid duration {text!r}")
        n, unit = int(m.group(1)), m.group(2)
        total += n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"invalid duration {text!r}")
    return total


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, problems):
        """`problems`: a list of strings (empty = pass) or a callable returning one."""
        if callable(problems):
            try:
                problems = problems()
            except Exception as e:  # a check that crashes is a failed check, with the reason
                problems = [f"{type(e).__name__}: {e}"]
        if problems:
            self.failed += 1
            print(f"FAIL {name}")
            for p in problems:
                print(f"       - {p}")
        else:
            self.passed += 1
            print(f"ok   {name}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rendered")
    ap.add_argument("--secret-template", default="deploy/k8s/base/secret.example.yaml")
    ap.add_argument("--readme", default="deploy/README.md")
    ap.add_argument("--alerts", default="deploy/prometheus/alerting-rules.yml")
    ap.add_argument("--count-file")
    args = ap.parse_args()

    with open(args.rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    def one(kind, name):
        found = [d for d in by_kind.get(kind, []) if d["metadata"]["name"] == name]
        if len(found) != 1:
            raise LookupError(f"expected one {kind} {name}, found {len(found)}")
        return found[0]

    c = Checks()
    dep = one("Deployment", "gatehouse")
    pod = dep["spec"]["template"]["spec"]
    ctr = next(x for x in pod["containers"] if x["name"] == "gatehouse")
    cm_name = next(
        s["configMap"]["name"]
        for v in pod["volumes"]
        if "projected" in v
        for s in v["projected"]["sources"]
        if "configMap" in s
    )
    config = yaml.safe_load(one("ConfigMap", cm_name)["data"]["gatehouse.yaml"])
    admin_port = int(str(config["admin-listen"]).rsplit(":", 1)[1])

    def port_number(port):
        if isinstance(port, int):
            return port
        return next(p["containerPort"] for p in ctr["ports"] if p.get("name") == port)

    # -- the edge Service
    def lb():
        svcs = [s for s in by_kind.get("Service", []) if s["spec"].get("type") == "LoadBalancer"]
        if not svcs:
            return ["no Service of type LoadBalancer"]
        out = []
        for s in svcs:
            if s["spec"].get("externalTrafficPolicy") != "Local":
                out.append(f"Service {s['metadata']['name']}: externalTrafficPolicy is {s['spec'].get('externalTrafficPolicy')!r}, want Local")
            ports = {p["port"]: port_number(p["targetPort"]) for p in s["spec"]["ports"]}
            listen = {int(str(config[k]).rsplit(":", 1)[1]) for k in ("listen", "tls-listen")}
            if set(ports) != {80, 443} or set(ports.values()) != listen:
                out.append(f"Service {s['metadata']['name']}: ports {ports}, want 80/443 onto the listen/tls-listen ports {sorted(listen)}")
        return out

    c.check("LoadBalancer Service with externalTrafficPolicy Local on 80/443 -> listen ports", lb)

    # -- probes
    def probes():
        out = []
        for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            p = ctr.get(kind, {}).get("httpGet")
            if not p:
                out.append(f"{kind}: missing or not httpGet")
                continue
            if p.get("path") != path:
                out.append(f"{kind}: path {p.get('path')!r}, want {path}")
            if port_number(p.get("port")) != admin_port:
                out.append(f"{kind}: port {p.get('port')} = {port_number(p.get('port'))}, want the config's admin-listen port {admin_port}")
        return out

    c.check(f"liveness /healthz and readiness /readyz on the admin port ({admin_port})", probes)

    # -- hardening
    def hardened():
        out = []
        sc, psc = ctr.get("securityContext", {}), pod.get("securityContext", {})
        eff = lambda k: sc.get(k, psc.get(k))  # noqa: E731
        if eff("runAsNonRoot") is not True:
            out.append("runAsNonRoot is not true")
        if eff("runAsUser") != 65532:
            out.append(f"runAsUser is {eff('runAsUser')}, want 65532")
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append("readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append("allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            out.append("privileged")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
            out.append(f"capabilities {sc.get('capabilities')}, want drop [ALL] and no add")
        if (eff("seccompProfile") or {}).get("type") != "RuntimeDefault":
            out.append("seccompProfile is not RuntimeDefault")
        if pod.get("automountServiceAccountToken") is not False:
            out.append("the pod mounts a service account token")
        sa = one("ServiceAccount", pod.get("serviceAccountName", "default"))
        if sa.get("automountServiceAccountToken") is not False:
            out.append("its ServiceAccount does not set automountServiceAccountToken: false")
        mounts = {m["mountPath"] for m in ctr.get("volumeMounts", [])}
        if "/tmp" not in mounts:
            out.append("no writable /tmp (upgrade socket, pid file) under the read-only root")
        for key in ("upgrade-sock", "pid-file"):
            path = str(config.get(key, "/tmp/x"))
            if not path.startswith("/tmp/"):
                out.append(f"config {key} {path!r} is not under the /tmp emptyDir")
        return out

    c.check("gateway container hardened (non-root 65532, read-only root, drop ALL, no escalation, seccomp)", hardened)

    # -- every referenced Secret exists or is documented
    def secrets():
        rendered = {s["metadata"]["name"]: s for s in by_kind.get("Secret", [])}
        with open(args.secret_template) as f:
            documented = {d["metadata"]["name"]: d for d in yaml.safe_load_all(f) if d and d.get("kind") == "Secret"}
        out = []
        refs = []
        for d in docs:
            spec = d.get("spec", {})
            tmpl = spec.get("template", {}).get("spec") if d["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet") else None
            if not tmpl:
                continue
            where = f"{d['kind']}/{d['metadata']['name']}"
            for ct in tmpl.get("containers", []) + tmpl.get("initContainers", []):
                for e in ct.get("env", []):
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        refs.append((where, ref["name"], ref["key"], ref.get("optional", False)))
                for ef in ct.get("envFrom", []):
                    if "secretRef" in ef:
                        refs.append((where, ef["secretRef"]["name"], None, ef["secretRef"].get("optional", False)))
            for v in tmpl.get("volumes", []):
                if "secret" in v:
                    refs.append((where, v["secret"]["secretName"], None, v["secret"].get("optional", False)))
                for s in v.get("projected", {}).get("sources", []):
                    if "secret" in s:
                        for item in s["secret"].get("items", [{"key": None}]):
                            refs.append((where, s["secret"]["name"], item["key"], s["secret"].get("optional", False)))
        if not refs:
            out.append("no Secret references found at all (the parser is out of date?)")
        for where, name, key, _optional in refs:
            src = rendered.get(name) or documented.get(name)
            if src is None:
                out.append(f"{where} references Secret {name!r}: neither rendered nor in {args.secret_template}")
                continue
            keys = set(src.get("data", {}) or {}) | set(src.get("stringData", {}) or {})
            if key is not None and key not in keys:
                out.append(f"{where} references key {key!r} of Secret {name!r}, which has only {sorted(keys)}")
        return out

    c.check("every Secret reference is rendered or documented in secret.example.yaml (with the key)", secrets)

    # -- env: every ${VAR} of the config is set, $(VAR) refers to an earlier variable
    def env():
        names = [e["name"] for e in ctr.get("env", [])]
        text = one("ConfigMap", cm_name)["data"]["gatehouse.yaml"]
        needed = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
        out = [f"config uses ${{{n}}} but the container does not set {n}" for n in sorted(needed - set(names))]
        for i, e in enumerate(ctr.get("env", [])):
            for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(e.get("value", ""))):
                if ref not in names[:i]:
                    out.append(f"env {e['name']} uses $({ref}), which is not defined before it (the kubelet would not expand it)")
        return out

    c.check("every ${VAR} of the config is set by the container; $(VAR) refs are defined earlier", env)

    # -- graceful shutdown timing
    def grace():
        g = parse_duration(config.get("grace-period", "30s"))
        t = parse_duration(config.get("graceful-shutdown-timeout", "10s"))
        pre = ctr.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
        tgps = pod.get("terminationGracePeriodSeconds", 30)
        out = []
        if pre is None:
            out.append("no lifecycle.preStop.sleep (needed: no shell in the image)")
            pre = 0
        if tgps < g:
            out.append(f"terminationGracePeriodSeconds {tgps} < grace-period {g:g}s")
        if tgps < pre + g + t:
            out.append(f"terminationGracePeriodSeconds {tgps} < preStop {pre} + grace-period {g:g} + graceful-shutdown-timeout {t:g}")
        return out

    c.check("terminationGracePeriodSeconds >= preStop + grace-period + graceful-shutdown-timeout", grace)

    # -- rollout and scale
    def rollout():
        out = []
        ru = dep["spec"].get("strategy", {}).get("rollingUpdate", {})
        if ru.get("maxUnavailable") != 0 or ru.get("maxSurge") != 1:
            out.append(f"rollingUpdate {ru}, want maxUnavailable 0 / maxSurge 1")
        hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", []) if h["spec"]["scaleTargetRef"]["name"] == "gatehouse"]
        if len(hpas) != 1:
            out.append("no HorizontalPodAutoscaler for the gateway")
        elif hpas[0]["spec"]["minReplicas"] < 3:
            out.append(f"HPA minReplicas {hpas[0]['spec']['minReplicas']} < 3")
        if "replicas" in dep["spec"] and dep["spec"]["replicas"] < 3:
            out.append(f"Deployment replicas {dep['spec']['replicas']} < 3")
        aff = pod.get("affinity", {}).get("podAntiAffinity", {})
        terms = aff.get("preferredDuringSchedulingIgnoredDuringExecution", []) + aff.get("requiredDuringSchedulingIgnoredDuringExecution", [])
        if not any((t.get("podAffinityTerm") or t).get("topologyKey") == "kubernetes.io/hostname" for t in terms):
            out.append("no podAntiAffinity by kubernetes.io/hostname")
        if not pod.get("topologySpreadConstraints"):
            out.append("no topologySpreadConstraints")
        return out

    c.check("zero-downtime rollout (0/1), HPA min >= 3, anti-affinity and spread by host", rollout)

    # -- Redis Cluster and the session store
    def redis():
        out = []
        sts = one("StatefulSet", "redis-cluster")
        if sts["spec"]["replicas"] != 6:
            out.append(f"redis-cluster replicas {sts['spec']['replicas']}, want 6")
        if not sts["spec"].get("volumeClaimTemplates"):
            out.append("redis-cluster has no volumeClaimTemplates")
        svc = one("Service", sts["spec"]["serviceName"])
        if svc["spec"].get("clusterIP") != "None":
            out.append(f"Service {svc['metadata']['name']} is not headless")
        url = next((e.get("value", "") for e in ctr["env"] if e["name"] == "GATEHOUSE_SESSION_STORE_URL"), "")
        if not url.startswith("redis-cluster://"):
            out.append(f"GATEHOUSE_SESSION_STORE_URL {url!r} is not redis-cluster://")
        jobs = [j for j in by_kind.get("Job", []) if "redis" in j["metadata"]["name"]]
        if not jobs:
            out.append("no Redis Cluster bootstrap Job")
        return out

    c.check("Redis Cluster: StatefulSet of 6 with PVCs, headless Service, bootstrap Job, gateway uses it", redis)

    def pdbs():
        out = []
        for d in (dep, one("StatefulSet", "redis-cluster")):
            labels = d["spec"]["template"]["metadata"]["labels"]
            match = [
                p for p in by_kind.get("PodDisruptionBudget", [])
                if all(labels.get(k) == v for k, v in p["spec"]["selector"].get("matchLabels", {}).items())
            ]
            if not match:
                out.append(f"no PodDisruptionBudget selects {d['kind']}/{d['metadata']['name']}")
        return out

    c.check("PodDisruptionBudgets cover the gateway and Redis", pdbs)

    def netpol():
        out = []
        np = [n for n in by_kind.get("NetworkPolicy", []) if n["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "gatehouse"]
        if len(np) != 1:
            return ["no NetworkPolicy for the gateway pods"]
        spec = np[0]["spec"]
        open_ports = set()
        for rule in spec.get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            if not rule.get("from"):
                if not ports:
                    out.append("an ingress rule allows every port from everywhere")
                open_ports |= ports
        if open_ports != {8080, 8443}:
            out.append(f"ports open to everyone {sorted(open_ports)}, want [8080, 8443]")
        if set(spec.get("policyTypes", [])) != {"Ingress", "Egress"}:
            out.append("policyTypes must be Ingress and Egress")
        if not any(p["port"] == 53 for r in spec.get("egress", []) for p in r.get("ports", [])):
            out.append("no DNS egress")
        if not any(r.get("from") and any(p["port"] == admin_port for p in r.get("ports", [])) for r in spec.get("ingress", [])):
            out.append(f"no restricted ingress rule for the admin port {admin_port}")
        if not [n for n in by_kind.get("NetworkPolicy", []) if n["metadata"]["name"] == "redis-cluster"]:
            out.append("no NetworkPolicy for Redis")
        return out

    c.check("NetworkPolicies: 8080/8443 from anywhere, admin restricted, DNS egress, Redis isolated", netpol)

    # -- monitoring
    def monitoring():
        out = []
        sms = by_kind.get("ServiceMonitor", [])
        if len(sms) != 1:
            return [f"{len(sms)} ServiceMonitors, want 1"]
        sm = sms[0]["spec"]
        admin = [
            s for s in by_kind.get("Service", [])
            if all(s["metadata"].get("labels", {}).get(k) == v for k, v in sm["selector"]["matchLabels"].items())
        ]
        if len(admin) != 1:
            return [f"the ServiceMonitor selects {len(admin)} Services, want exactly the admin Service"]
        admin = admin[0]
        port = next((p for p in admin["spec"]["ports"] if p["name"] == sm["endpoints"][0]["port"]), None)
        if port is None or port_number(port["targetPort"]) != admin_port:
            out.append(f"the ServiceMonitor's port does not reach the admin port {admin_port}")
        job = admin["metadata"]["labels"].get(sm["jobLabel"]) if sm.get("jobLabel") else admin["metadata"]["name"]
        try:
            with open(args.alerts) as f:
                wanted = set(re.findall(r'job="([^"]+)"', f.read()))
        except FileNotFoundError:
            wanted = set()
        for w in sorted(wanted - {job}):
            out.append(f"the alert rules select job={w!r}, the ServiceMonitor produces job={job!r}")
        rules = by_kind.get("PrometheusRule", [])
        if not rules:
            out.append("no PrometheusRule")
        dash = [m for m in by_kind.get("ConfigMap", []) if m["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
        if not dash:
            out.append('no ConfigMap labelled grafana_dashboard: "1"')
        return out

    c.check("ServiceMonitor -> admin port with the job the alerts expect; PrometheusRule and dashboards present", monitoring)

    def runbooks():
        try:
            with open(args.alerts) as f:
                alerts = yaml.safe_load(f)
        except FileNotFoundError:
            return [f"{args.alerts} does not exist yet"]
        names = [r["alert"] for g in alerts["groups"] for r in g["rules"] if "alert" in r]
        with open(args.readme) as f:
            readme = f.read()
        anchors = set(re.findall(r'<a id="(alert-[a-z0-9-]+)"></a>', readme)) | {
            "alert-" + re.sub(r"[^a-z0-9 -]", "", m.lower()).replace(" ", "-") for m in re.findall(r"^#+ +Alert: *(\S+)", readme, re.M)
        }
        return [f"alert {n}: no section #alert-{n.lower()} in {args.readme}" for n in names if f"alert-{n.lower()}" not in anchors]

    c.check("every alert has a runbook section #alert-<name> in deploy/README.md", runbooks)

    print(f"invariants: {c.passed} passed, {c.failed} failed")
    if args.count_file:
        with open(args.count_file, "w") as f:
            f.write(f"{c.passed} {c.failed}\n")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
