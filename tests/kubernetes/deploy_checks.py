"""What the deployment manifests promise beyond their schema, checked on their renderings.

Usage: deploy_checks.py NAME=RENDERED.yaml...  (validate-deploy.sh passes deploy/base and every
overlay of deploy/overlays, rendered by `kubectl kustomize`). Every rendering is checked for
what holds everywhere (hardened non-root containers, Services and an Ingress that reach a port,
the server's flags, Redis's persistence, the RBAC Role), then for what its own name promises
(EXPECTED). Prints every problem found and exits 1 if there is one.
"""

import sys
import tomllib
from pathlib import Path

import yaml  # PyYAML, a dependency of kubernetes-validate

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "chainr"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}

# What each rendering is: its replicas, the chainr Service's type, its store, whether it has an
# Ingress. A new overlay needs its line here.
EXPECTED = {
    "base": {"replicas": 2, "service": "ClusterIP", "store": "redis", "ingress": False},
    "ingress": {"replicas": 2, "service": "ClusterIP", "store": "redis", "ingress": True},
    "nodeport": {"replicas": 2, "service": "NodePort", "store": "redis", "ingress": False},
    "single": {"replicas": 1, "service": "ClusterIP", "store": "sqlite", "ingress": False},
}

# docs/kubernetes.md's table, exactly: what the Kubernetes executor needs and nothing more.
RUNNER_RULES = {
    ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "pods/log"): {"get"},
}

# Redis flags that docs/deploy.md explains, with the value each must have.
REDIS_FLAGS = {
    "--appendonly": "yes",
    "--appendfsync": "everysec",
    "--maxmemory-policy": "noeviction",
}

# How long `chainrc serve` takes to drain after SIGTERM, and the margin the grace period keeps.
DRAIN_SECONDS = 10
MARGIN_SECONDS = 5


def cargo_version():
    """The workspace's version: the tag of the image the Dockerfile builds (docs/deploy.md)."""
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    return cargo["workspace"]["package"]["version"]


class Checker:
    def __init__(self, name, docs):
        self.name = name
        self.docs = docs
        self.problems = []

    def fail(self, what, message):
        self.problems.append(f"{self.name}: {what}: {message}")

    def all(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind, name):
        found = [d for d in self.all(kind) if d["metadata"]["name"] == name]
        return found[0] if len(found) == 1 else None

    def workloads(self):
        return [d for d in self.docs if d["kind"] in ("Deployment", "StatefulSet")]

    # Everywhere.

    def namespaces(self):
        for d in self.docs:
            what = f"{d['kind']} {d['metadata']['name']}"
            if d["kind"] in CLUSTER_SCOPED:
                continue
            if d["metadata"].get("namespace") != NAMESPACE:
                self.fail(what, f"is not in the namespace {NAMESPACE}")
        if self.one("Namespace", NAMESPACE) is None:
            self.fail("Namespace", f"{NAMESPACE} is not created")

    def pods(self):
        for w in self.workloads():
            what = f"{w['kind']} {w['metadata']['name']}"
            spec = w["spec"]["template"]["spec"]
            pod = spec.get("securityContext", {})
            if spec.get("enableServiceLinks") is not False:
                self.fail(what, "enableServiceLinks is not false (CHAINR_* variables would appear)")
            for key in ("hostNetwork", "hostPID", "hostIPC"):
                if spec.get(key):
                    self.fail(what, f"{key} is set")
            for c in spec.get("initContainers", []) + spec["containers"]:
                self.container(f"{what}, container {c['name']}", pod, c)

    def container(self, what, pod, c):
        sc = c.get("securityContext", {})

        def effective(key):
            return sc[key] if key in sc else pod.get(key)

        if effective("runAsNonRoot") is not True:
            self.fail(what, "runAsNonRoot is not true")
        if not isinstance(effective("runAsUser"), int) or effective("runAsUser") == 0:
            self.fail(what, "runs as no numeric non-root user (runAsUser)")
        if sc.get("privileged"):
            self.fail(what, "is privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            self.fail(what, "allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            self.fail(what, "readOnlyRootFilesystem is not true")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or caps.get("add"):
            self.fail(what, "does not drop ALL capabilities (or adds some)")
        seccomp = (effective("seccompProfile") or {}).get("type")
        if seccomp != "RuntimeDefault":
            self.fail(what, f"seccompProfile is {seccomp}, not RuntimeDefault")
        image = c.get("image", "")
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if not tag or tag == "latest":
            self.fail(what, f"image {image!r} has no fixed tag")
        resources = c.get("resources", {})
        for section, keys in (("requests", ("cpu", "memory")), ("limits", ("memory",))):
            for key in keys:
                if key not in resources.get(section, {}):
                    self.fail(what, f"has no {section}.{key}")

    def services(self):
        """Every Service selects a workload's pods and targets one of their ports."""
        for s in self.all("Service"):
            what = f"Service {s['metadata']['name']}"
            selector = s["spec"].get("selector", {})
            targets = [
                w
                for w in self.workloads()
                if selector
                and selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
            ]
            if not targets:
                self.fail(what, f"selects no workload's pods ({selector})")
                continue
            ports = set()
            for c in targets[0]["spec"]["template"]["spec"]["containers"]:
                for p in c.get("ports", []):
                    ports.update({p["containerPort"], p.get("name")})
            for p in s["spec"]["ports"]:
                if p.get("targetPort", p["port"]) not in ports:
                    self.fail(
                        what, f"targets port {p.get('targetPort')}, which its pods do not have"
                    )
        for w in self.all("StatefulSet"):
            governing = self.one("Service", w["spec"].get("serviceName", ""))
            if governing is None or governing["spec"].get("clusterIP") != "None":
                self.fail(
                    f"StatefulSet {w['metadata']['name']}", "has no headless governing Service"
                )
        for w in self.workloads():
            labels = w["spec"]["template"]["metadata"]["labels"]
            if not w["spec"]["selector"]["matchLabels"].items() <= labels.items():
                self.fail(
                    f"{w['kind']} {w['metadata']['name']}", "its selector does not match its pods"
                )

    def rbac(self):
        role = self.one("Role", "chainr-runner")
        binding = self.one("RoleBinding", "chainr-runner")
        if role is None or binding is None:
            self.fail("RBAC", "the Role or RoleBinding chainr-runner is missing")
            return
        rules = {}
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    rules.setdefault((group, resource), set()).update(rule["verbs"])
        if rules != RUNNER_RULES:
            self.fail("Role chainr-runner", f"grants {rules}, not {RUNNER_RULES}")
        subjects = {(s["kind"], s["name"], s.get("namespace")) for s in binding["subjects"]}
        if subjects != {("ServiceAccount", "chainr", NAMESPACE)}:
            self.fail("RoleBinding chainr-runner", f"binds {subjects}")
        if binding["roleRef"]["name"] != "chainr-runner":
            self.fail("RoleBinding chainr-runner", "does not bind the Role chainr-runner")

    # The server.

    def server(self, expected):
        d = self.one("Deployment", "chainr")
        if d is None:
            self.fail("Deployment chainr", "is missing")
            return
        what = "Deployment chainr"
        spec = d["spec"]
        pod = spec["template"]["spec"]
        if spec.get("replicas") != expected["replicas"]:
            self.fail(what, f"has {spec.get('replicas')} replicas, not {expected['replicas']}")
        if (
            pod.get("serviceAccountName") != "chainr"
            or self.one("ServiceAccount", "chainr") is None
        ):
            self.fail(what, "does not run as the ServiceAccount chainr of the RoleBinding")
        c = next((c for c in pod["containers"] if c["name"] == "chainr"), None)
        if c is None:
            self.fail(what, "has no container chainr")
            return
        version = cargo_version()
        if c["image"] != f"chainr:{version}":
            self.fail(
                what, f"image {c['image']} is not chainr:{version}, the version in Cargo.toml"
            )

        args = c.get("args", [])
        if args[:1] != ["serve"] or len(args) % 2 != 1:
            self.fail(what, f"args are not `serve` and flags with values: {args}")
            return
        flags = dict(zip(args[1::2], args[2::2]))
        if flags.get("--listen") != "0.0.0.0:8080":
            self.fail(what, "does not listen on 0.0.0.0:8080")
        if 8080 not in [p["containerPort"] for p in c.get("ports", [])]:
            self.fail(what, "does not declare the container port 8080")
        if flags.get("--executor") != "kube":
            self.fail(what, "does not run jobs with --executor kube")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            if c.get(probe, {}).get("httpGet", {}).get("path") != path:
                self.fail(what, f"its {probe} does not GET {path}")
        pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pause = int(pre_stop[1]) if pre_stop[:1] == ["sleep"] and len(pre_stop) == 2 else 0
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if grace < pause + DRAIN_SECONDS + MARGIN_SECONDS:
            self.fail(
                what,
                f"a grace period of {grace} s leaves no room for a {pause} s pause and the drain",
            )

        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}

        def volume_at(path):
            """The volume mounted at a parent folder of `path`, and the path inside it."""
            for mount, name in mounts.items():
                if path.startswith(mount.rstrip("/") + "/"):
                    return volumes.get(name, {}), path[len(mount.rstrip("/")) + 1 :]
            return {}, None

        tokens = flags.get("--tokens")
        if tokens is None or "--no-auth" in args:
            self.fail(what, "serves without --tokens")
        else:
            volume, inside = volume_at(tokens)
            secret = volume.get("secret", {})
            items = {i["path"]: i["key"] for i in secret.get("items", [])}
            if secret.get("secretName") != "chainr-tokens" or inside not in items:
                self.fail(what, f"--tokens {tokens} is not a file of the Secret chainr-tokens")

        if expected["store"] == "redis":
            if flags.get("--redis") != "redis://chainr-redis:6379" or "--data-dir" in flags:
                self.fail(what, "does not use --redis redis://chainr-redis:6379 (alone)")
            self.redis()
        else:
            if "--redis" in flags or self.all("StatefulSet"):
                self.fail(what, "has Redis where it should have SQLite only")
            data = flags.get("--data-dir")
            claim = (
                volumes.get(mounts.get(data, ""), {})
                .get("persistentVolumeClaim", {})
                .get("claimName")
            )
            if data is None or claim is None or self.one("PersistentVolumeClaim", claim) is None:
                self.fail(
                    what, f"--data-dir {data} is not on a PersistentVolumeClaim of the rendering"
                )
            if spec.get("replicas") != 1 or spec.get("strategy", {}).get("type") != "Recreate":
                self.fail(what, "SQLite needs one replica, replaced with the Recreate strategy")

        service = self.one("Service", "chainr")
        if service is None:
            self.fail("Service chainr", "is missing")
        else:
            if service["spec"].get("type", "ClusterIP") != expected["service"]:
                self.fail(
                    "Service chainr",
                    f"is a {service['spec'].get('type')}, not a {expected['service']}",
                )
            if [(p["port"], p.get("targetPort")) for p in service["spec"]["ports"]] != [
                (80, "http")
            ]:
                self.fail("Service chainr", "does not map port 80 to the pods' http port")

    def redis(self):
        s = self.one("StatefulSet", "chainr-redis")
        if s is None:
            self.fail("StatefulSet chainr-redis", "is missing")
            return
        what = "StatefulSet chainr-redis"
        c = s["spec"]["template"]["spec"]["containers"][0]
        args = c.get("command", []) + c.get("args", [])
        flags = dict(zip(args[1::2], args[2::2])) if args[:1] == ["redis-server"] else {}
        for flag, value in REDIS_FLAGS.items():
            if flags.get(flag) != value:
                self.fail(what, f"does not run with {flag} {value} ({args})")
        if "--maxmemory" not in flags:
            self.fail(what, "has no --maxmemory (noeviction needs a bound below the memory limit)")
        claims = {t["metadata"]["name"] for t in s["spec"].get("volumeClaimTemplates", [])}
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        if mounts.get(flags.get("--dir")) not in claims:
            self.fail(what, f"its --dir {flags.get('--dir')} is not on a volume claim template")
        if s["spec"].get("replicas", 1) != 1:
            self.fail(
                what,
                "has more than one replica (they would not replicate; each is a separate store)",
            )
        service = self.one("Service", "chainr-redis")
        if service is None or [p["port"] for p in service["spec"]["ports"]] != [6379]:
            self.fail("Service chainr-redis", "is missing or not on port 6379")
        policy = self.one("NetworkPolicy", "chainr-redis")
        if (
            policy is None
            or policy["spec"]["podSelector"]["matchLabels"] != s["spec"]["selector"]["matchLabels"]
        ):
            self.fail("NetworkPolicy chainr-redis", "is missing or does not select the Redis pod")

    def ingress(self, expected):
        ingresses = self.all("Ingress")
        if not expected["ingress"]:
            if ingresses:
                self.fail("Ingress", "there should be none")
            return
        if len(ingresses) != 1:
            self.fail("Ingress", f"there should be one, there are {len(ingresses)}")
            return
        i = ingresses[0]
        what = f"Ingress {i['metadata']['name']}"
        rules = i["spec"]["rules"]
        if [r.get("host") for r in rules] != ["chainr.io"]:
            self.fail(what, "is not for the host chainr.io alone")
        paths = [
            (
                p["path"],
                p["pathType"],
                p["backend"]["service"]["name"],
                p["backend"]["service"]["port"].get("name"),
            )
            for r in rules
            for p in r["http"]["paths"]
        ]
        if paths != [("/", "Prefix", "chainr", "http")]:
            self.fail(what, f"does not send / to the chainr Service's http port: {paths}")
        annotations = i["metadata"].get("annotations", {})
        if annotations.get("nginx.ingress.kubernetes.io/proxy-buffering") != "off":
            self.fail(what, "buffers responses (server-sent events need proxy-buffering off)")

    def run(self):
        expected = EXPECTED.get(self.name)
        if expected is None:
            self.fail("EXPECTED", "this rendering has no line in deploy_checks.py's EXPECTED")
            return self.problems
        self.namespaces()
        self.pods()
        self.services()
        self.rbac()
        self.server(expected)
        self.ingress(expected)
        return self.problems


def standalone_rbac():
    """deploy/base/rbac.yaml also stands alone (`kubectl apply -f`), so it names its namespace."""
    problems = []
    for d in yaml.safe_load_all((ROOT / "deploy/base/rbac.yaml").read_text()):
        if d["metadata"].get("namespace") != NAMESPACE:
            problems.append(
                f"deploy/base/rbac.yaml: {d['kind']} {d['metadata']['name']} names no namespace"
            )
    return problems


def main(args):
    if not args:
        sys.exit(__doc__)
    problems = standalone_rbac()
    for arg in args:
        name, _, path = arg.partition("=")
        docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
        problems += Checker(name, docs).run()
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        sys.exit(f"deploy_checks.py: {len(problems)} problem(s)")


if __name__ == "__main__":
    main(sys.argv[1:])
