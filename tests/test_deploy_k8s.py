"""The Kubernetes manifests (deploy/k8s), rendered by kubectl's kustomize and checked offline.

Every overlay with every valid set of components is rendered; each core object must pass
kubernetes-validate's schemas (strict: unknown fields fail), each custom resource the schemas in
deploy/k8s/schemas. The cross-checks tie the manifests to the code so the two cannot drift: the
SENTIMENT_* variables are fields of consumer.settings.Settings with values it accepts, the probe
paths are the ones consumer/http_server.py serves, the port is the service's, the alert rules are
deploy/prometheus/alerts.yml, and the autoscalers never exceed the input topic's partitions.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from consumer.settings import SECRETS_DIR_ENV, Settings, env_name, load_settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu")
# KEDA and the HPA both drive the Deployment's replicas: a cluster uses one of them or neither.
SCALERS: tuple[tuple[str, ...], ...] = ((), ("hpa",), ("keda",), ("keda", "keda-sasl"))
OPTIONAL = ("monitoring", "model-volume")
COMBOS = [
    (overlay, (*extra, *scaler))
    for overlay in OVERLAYS
    for scaler in SCALERS
    for n in range(len(OPTIONAL) + 1)
    for extra in itertools.combinations(OPTIONAL, n)
]
# The oldest Kubernetes minor the manifests promise to work on, and the newest schema known.
KUBE_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CRD_SCHEMAS = yaml.safe_load((K8S / "schemas" / "crds.yaml").read_text(encoding="utf-8"))

Objects = list[dict[str, Any]]
_VALID: set[str] = set()  # core objects already validated; many combinations share them


def _combo_id(value: str | tuple[str, ...]) -> str:
    return value if isinstance(value, str) else "+".join(value) or "no-components"


def deploy_tool(name: str, target: str) -> str:
    """The venv's copy of a deploy tool, else the PATH's; `make TARGET` installs it."""
    venv_bin = str(Path(sys.executable).parent)
    found = shutil.which(name, path=os.pathsep.join([venv_bin, os.environ.get("PATH", "")]))
    if found is None:
        pytest.fail(f"{name} not found: `make {target}` installs it")
    return found


def _kubectl() -> str:
    return deploy_tool("kubectl", "deploy-tools")


def kustomize(overlay: str, components: tuple[str, ...], work: Path) -> Objects:
    """Render an overlay plus components, the way a user composes them in a kustomization."""
    rel = os.path.relpath(K8S, work)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"{rel}/overlays/{overlay}"],
        "components": [f"{rel}/components/{c}" for c in components],
    }
    (work / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    out = subprocess.run(
        [_kubectl(), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(work)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, tuple[str, ...]], Objects]:
    """kustomize(), once per overlay and set of components."""
    _kubectl()
    cache: dict[tuple[str, tuple[str, ...]], Objects] = {}

    def _render(overlay: str, components: tuple[str, ...] = ()) -> Objects:
        key = (overlay, components)
        if key not in cache:
            work = tmp_path_factory.mktemp(f"{overlay}-{'-'.join(components) or 'plain'}")
            cache[key] = kustomize(overlay, components, work)
        return cache[key]

    return _render


def _one(objects: Objects, kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _container(objects: Objects) -> dict[str, Any]:
    containers = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _settings_env(objects: Objects) -> dict[str, str]:
    """The SENTIMENT_* environment a pod gets: its ConfigMaps (envFrom), then its own env."""
    configmaps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    container = _container(objects)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", "")
    return {k: v for k, v in env.items() if k.startswith("SENTIMENT_")}


def _crd_validator(obj: dict[str, Any]) -> jsonschema.Draft202012Validator:
    key = f"{obj['apiVersion']}/{obj['kind']}"
    assert key in CRD_SCHEMAS, f"no schema for {key} in deploy/k8s/schemas/crds.yaml"
    schema = {**CRD_SCHEMAS[key], "$defs": CRD_SCHEMAS["$defs"]}
    return jsonschema.Draft202012Validator(schema)


def _validate(obj: dict[str, Any]) -> None:
    if f"{obj['apiVersion']}/{obj['kind']}" in CRD_SCHEMAS:
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _crd_validator(obj).iter_errors(obj)
        ]
        assert not errors, f"{obj['kind']} {obj['metadata']['name']}: {errors}"
        return
    # Anything else must be a core object kubernetes-validate knows (unknown kinds fail here).
    key = json.dumps(obj, sort_keys=True)
    if key not in _VALID:
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        _VALID.add(key)


def _readme_partitions() -> int:
    """Partitions of the input topic in the README's topic-creation step."""
    readme = (ROOT / "deploy" / "README.md").read_text(encoding="utf-8")
    m = re.search(r"--topic\s+posts\s+--partitions\s+(\d+)", readme)
    assert m, "deploy/README.md should create the input topic with --topic posts --partitions N"
    return int(m.group(1))


# --- rendering and schemas ---------------------------------------------------------------------


@pytest.mark.parametrize(("overlay", "components"), COMBOS, ids=_combo_id)
def test_every_combination_renders_and_validates(
    render: Callable[[str, tuple[str, ...]], Objects], overlay: str, components: tuple[str, ...]
) -> None:
    objects = render(overlay, components)
    kinds = sorted(o["kind"] for o in objects)
    for required in ("ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"):
        assert required in kinds
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(names) == len(set(names)), f"duplicate objects: {names}"
    for obj in objects:
        _validate(obj)
    expected_extra = {
        "monitoring": {"ServiceMonitor", "PrometheusRule"},
        "keda": {"ScaledObject"},
        "keda-sasl": {"TriggerAuthentication"},
        "hpa": {"HorizontalPodAutoscaler"},
        "model-volume": set(),
    }
    for component in components:
        assert expected_extra[component] <= set(kinds), component


def test_the_validators_reject_a_misspelt_field(
    render: Callable[[str, tuple[str, ...]], Objects],
) -> None:
    """The checks above can fail: a typo a real API server would silently drop is caught."""
    objects = render("cpu", ("keda", "monitoring"))
    deployment = json.loads(json.dumps(_one(objects, "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)

    scaled = json.loads(json.dumps(_one(objects, "ScaledObject")))
    scaled["spec"]["triggers"][0]["metadata"]["lagTreshold"] = "10"
    assert list(_crd_validator(scaled).iter_errors(scaled))
    monitor = json.loads(json.dumps(_one(objects, "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    assert list(_crd_validator(monitor).iter_errors(monitor))


def test_secret_template_is_valid_and_matches_its_users(
    render: Callable[[str, tuple[str, ...]], Objects],
) -> None:
    secret = yaml.safe_load((K8S / "base" / "secret-template.yaml").read_text(encoding="utf-8"))
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(secret, version, strict=True)
    objects = render("cpu", ("keda", "keda-sasl"))
    volumes = _one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    mounted = [v["secret"] for v in volumes if "secret" in v]
    assert [m["secretName"] for m in mounted] == [secret["metadata"]["name"]]
    # Where the Secret is mounted is where the service looks for it.
    mount = next(m for m in _container(objects)["volumeMounts"] if m["name"] == "kafka-secrets")
    assert _settings_env(objects)[SECRETS_DIR_ENV] == mount["mountPath"]
    # KEDA's trigger reads the same Secret's keys.
    for ref in _one(objects, "TriggerAuthentication")["spec"]["secretTargetRef"]:
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]


def test_secret_template_keys_are_read_by_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mount the template's keys as files the way the kubelet does; the settings pick them up."""
    for name in list(os.environ):
        if name.startswith("SENTIMENT_"):
            monkeypatch.delenv(name)
    secret = yaml.safe_load((K8S / "base" / "secret-template.yaml").read_text(encoding="utf-8"))
    for key, value in secret["stringData"].items():
        (tmp_path / key).write_text(value)
    s = load_settings(bootstrap_servers="k:9092", _secrets_dir=tmp_path, _env_file=None)
    passed = s.librdkafka_config()
    expected = {k.removeprefix("kafka."): v for k, v in secret["stringData"].items()}
    assert passed == expected
    assert "change-me" not in repr(s)


# --- cross-checks with the code ----------------------------------------------------------------


@pytest.mark.parametrize(("overlay", "components"), COMBOS, ids=_combo_id)
def test_env_vars_are_settings_the_service_accepts(
    render: Callable[[str, tuple[str, ...]], Objects],
    overlay: str,
    components: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = render(overlay, components)
    env = _settings_env(objects)
    known = {env_name(field) for field in Settings.model_fields} | {SECRETS_DIR_ENV}
    unknown = sorted(set(env) - known)
    assert not unknown, f"not settings of consumer/settings.py: {unknown}"
    # A model other than the shipped one must lie on a volume the pod mounts.
    model = env.get(env_name("model"), "default")
    if model != "default":
        mounts = [m["mountPath"] for m in _container(objects)["volumeMounts"]]
        assert any(model.startswith(m.rstrip("/") + "/") for m in mounts), (model, mounts)
        env[env_name("model")] = "default"
    # The values themselves: the service's own validation accepts them.
    for name in list(os.environ):
        if name.startswith("SENTIMENT_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name != SECRETS_DIR_ENV:
            monkeypatch.setenv(name, value)
    settings = load_settings(_secrets_dir=None, _env_file=None)
    assert settings.device == ("cuda" if overlay == "gpu" else "cpu")


def test_probes_and_port_match_the_service(
    render: Callable[[str, tuple[str, ...]], Objects],
) -> None:
    from consumer.http_server import Health, HttpServer

    default_port = Settings.model_fields["http_port"].default
    for overlay in OVERLAYS:
        objects = render(overlay, ())
        container = _container(objects)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"metrics": default_port}
        assert int(_settings_env(objects).get(env_name("http_port"), default_port)) == default_port
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}

    # The paths are the ones the service's HTTP server answers: 200 when healthy, 503 when not.
    health = Health(stall_seconds=60)
    server = HttpServer(0, health, host="127.0.0.1")
    server.start()
    try:

        def status(path: str) -> int:
            url = f"http://127.0.0.1:{server.port}{path}"
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    return int(r.status)
            except urllib.error.HTTPError as e:
                return e.code

        probes = {
            p: container[probe]["httpGet"]["path"]
            for p, probe in (("ready", "readinessProbe"), ("live", "livenessProbe"))
        }
        assert status(probes["live"]) == 200
        assert status(probes["ready"]) == 503  # model not loaded, not in the group yet
        health.model_loaded = health.in_group = True
        assert status(probes["ready"]) == 200
        assert status("/no-such-probe") == 404
    finally:
        server.stop()


def test_service_and_monitor_select_the_pods_on_the_named_port(
    render: Callable[[str, tuple[str, ...]], Objects],
) -> None:
    objects = render("cpu", ("monitoring",))
    pod_labels = _one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = _one(objects, "Service")
    monitor = _one(objects, "ServiceMonitor")
    pdb = _one(objects, "PodDisruptionBudget")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    container_ports = {p["name"] for p in _container(objects)["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in service_ports
        assert service_ports[endpoint["port"]]["targetPort"] in container_ports
        assert endpoint["path"] == "/metrics"


def test_prometheus_rule_carries_the_alert_rules() -> None:
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text("utf-8"))
    rule_file = K8S / "components" / "monitoring" / "prometheusrule.yaml"
    rule = yaml.safe_load(rule_file.read_text(encoding="utf-8"))
    assert rule["spec"]["groups"] == alerts["groups"], "out of date: run `make k8s-rules`"
    assert alerts["groups"] and all(g["rules"] for g in alerts["groups"])


def test_pod_security_and_shutdown(render: Callable[[str, tuple[str, ...]], Objects]) -> None:
    from consumer.delivery import DRAIN_SECONDS

    for overlay in OVERLAYS:
        pod = _one(render(overlay, ()), "Deployment")["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        }
        tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
        assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert pod["automountServiceAccountToken"] is False
        # Drain, then the producer's final flush (5 s in consumer/service.py), then leave.
        assert pod["terminationGracePeriodSeconds"] > DRAIN_SECONDS + 5


def test_gpu_overlay_asks_for_a_gpu_and_cpu_overlay_does_not(
    render: Callable[[str, tuple[str, ...]], Objects],
) -> None:
    gpu_objects = render("gpu", ())
    gpu_pod = _one(gpu_objects, "Deployment")["spec"]["template"]["spec"]
    limits = gpu_pod["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    assert gpu_pod["nodeSelector"]
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu_pod["tolerations"])
    assert _settings_env(gpu_objects)[env_name("device")] == "cuda"
    # Image tags are the project's version, so a release bumps both together.
    version = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
    assert _container(gpu_objects)["image"].endswith(f":{version}-gpu")

    cpu_objects = render("cpu", ())
    cpu_pod = _one(cpu_objects, "Deployment")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in cpu_pod["containers"][0]["resources"]["limits"]
    assert "tolerations" not in cpu_pod
    assert _settings_env(cpu_objects)[env_name("device")] == "cpu"
    assert _container(cpu_objects)["image"].endswith(f":{version}-cpu")


def test_keda_scales_on_the_groups_lag_within_the_partitions(
    render: Callable[[str, tuple[str, ...]], Objects],
) -> None:
    objects = render("cpu", ("keda",))
    spec = _one(objects, "ScaledObject")["spec"]
    assert spec["scaleTargetRef"]["name"] == _one(objects, "Deployment")["metadata"]["name"]
    # Never scale to zero: not by minReplicaCount, not by idleReplicaCount.
    assert spec["minReplicaCount"] >= 1
    assert "idleReplicaCount" not in spec
    assert spec["maxReplicaCount"] <= _readme_partitions()
    (trigger,) = spec["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["allowIdleConsumers"] == "false"
    # The trigger reads group, topic and brokers from the pods' own settings.
    env = _settings_env(objects)
    for key, field in (
        ("bootstrapServersFromEnv", "bootstrap_servers"),
        ("consumerGroupFromEnv", "group_id"),
        ("topicFromEnv", "input_topic"),
    ):
        assert meta[key] == env_name(field)
        assert meta[key] in env
    # A healthy group carries up to one batch per partition between commits; that lag alone must
    # not ask for a second replica.
    batch = Settings.model_fields["batch_max_size"].default
    assert batch * _readme_partitions() <= int(meta["lagThreshold"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_has_a_core_for_each_tokenizer_worker_and_the_poll_loop(
    render: Callable[[str, tuple[str, ...]], Objects], overlay: str
) -> None:
    objects = render(overlay, ())
    env = _settings_env(objects)
    default = Settings.model_fields["tokenizer_processes"].default
    workers = int(env.get(env_name("tokenizer_processes"), default))
    cpu = _container(objects)["resources"]["limits"]["cpu"]
    cores = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    assert workers + 1 <= cores


def test_hpa_stays_within_the_partitions(render: Callable[[str, tuple[str, ...]], Objects]) -> None:
    objects = render("gpu", ("hpa",))
    hpa = _one(objects, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == _one(objects, "Deployment")["metadata"]["name"]
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"] <= _readme_partitions()


def test_every_path_the_deploy_readme_names_exists() -> None:
    readme = (ROOT / "deploy" / "README.md").read_text(encoding="utf-8")
    paths = set(re.findall(r"(?<![\w/-])(deploy/[\w./-]+[\w])", readme))
    paths |= {f"deploy/{p}" for p in re.findall(r"(?<![\w/-])(k8s/[\w./-]+[\w])", readme)}
    paths.discard("deploy/sentiment")  # kubectl's `deploy/<name>`, the Deployment, not a path
    assert len(paths) >= 10
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"deploy/README.md names paths that do not exist: {missing}"
