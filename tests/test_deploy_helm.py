"""The Helm chart (deploy/helm/sentiment-stream): linted, rendered, validated, equal to kustomize.

The chart and deploy/k8s describe the same objects twice, so the test that matters is the one
that keeps them equal: for every overlay and set of components that tests/test_deploy_k8s.py
renders, `helm template` with the matching values renders the same objects (kind and name), and
each object is equal field by field once three kinds of difference are normalised away, each an
intended one: Helm's own labels (chart, managed-by, version, and the release's instance, which
also narrows the selectors so that two releases never select each other's pods), the
ConfigMap's name (kustomize appends a content hash; the chart keeps the name and rolls the pods
with a checksum annotation instead), and the component objects' labels (kustomize labels only
the base's objects, the chart labels every object). Everything else, image, args, env, probes,
ports, resources, security contexts, volumes, replicas, the PDB, the autoscalers, the
ScaledObject's trigger and the alert rules, must be identical.

Credentials never pass through values: the chart renders no Secret, values.schema.json rejects
any key it does not know (so `--set kafka.password=...` fails), and every Secret the pods or
KEDA read is one named by a value.
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumer.settings import SECRETS_DIR_ENV, Settings, env_name
from tests.test_deploy_k8s import (
    COMBOS,
    ROOT,
    Objects,
    _combo_id,
    _validate,
    deploy_tool,
    kustomize,
)

CHART = ROOT / "deploy" / "helm" / "sentiment-stream"
RELEASE = "sentiment"  # the release name the README installs, which names the objects
VALUES = {"cpu": (), "gpu": (str(CHART / "values-gpu.yaml"),)}
# The values that add what each kustomize component adds.
COMPONENT_VALUES = {
    "monitoring": (
        "monitoring.serviceMonitor.enabled=true",
        "monitoring.prometheusRule.enabled=true",
    ),
    "keda": ("keda.enabled=true",),
    "keda-sasl": ("keda.sasl.enabled=true",),
    "hpa": ("hpa.enabled=true",),
    "model-volume": ("modelVolume.enabled=true",),
}
# Everything optional at once, with each autoscaler.
ALL_KEDA = tuple(
    s for c in ("monitoring", "keda", "keda-sasl", "model-volume") for s in COMPONENT_VALUES[c]
)
ALL_HPA = tuple(s for c in ("monitoring", "hpa", "model-volume") for s in COMPONENT_VALUES[c])
HELM_ONLY_LABELS = frozenset(
    {
        "helm.sh/chart",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/version",
        "app.kubernetes.io/instance",
    }
)
# The labels deploy/k8s/base/kustomization.yaml puts on the base's objects (not on components').
BASE_LABELS = frozenset({"app.kubernetes.io/name", "app.kubernetes.io/component"})
KUSTOMIZE_HASH = re.compile(r"-[a-z0-9]{10}$")
CREDENTIAL_KEY = re.compile(r"passw|token(?!izer)|username|userinfo|credential|jaas|apikey")
VARIANTS = pytest.mark.parametrize("variant", ["cpu", "gpu"])
SET_CASES = pytest.mark.parametrize(
    "sets", [(), ALL_KEDA, ALL_HPA], ids=["plain", "all-with-keda", "all-with-hpa"]
)


def _helm() -> str:
    return deploy_tool("helm", "helm")


def _run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_helm(), *args], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False
    )


def helm_template(
    variant: str = "cpu",
    sets: tuple[str, ...] = (),
    release: str = RELEASE,
    extra_files: tuple[str, ...] = (),
) -> Objects:
    args = ["template", release, str(CHART)]
    for values_file in (*VALUES[variant], *extra_files):
        args += ["-f", values_file]
    for s in sets:
        args += ["--set", s]
    out = _run_helm(*args)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def template() -> Callable[..., Objects]:
    cache: dict[tuple[Any, ...], Objects] = {}

    def _template(
        variant: str = "cpu", sets: tuple[str, ...] = (), release: str = RELEASE
    ) -> Objects:
        key = (variant, sets, release)
        if key not in cache:
            cache[key] = helm_template(variant, sets, release)
        return json.loads(json.dumps(cache[key]))  # a copy: tests may change it

    return _template


def _by_key(objects: Objects) -> dict[tuple[str, str], dict[str, Any]]:
    keyed = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    assert len(keyed) == len(objects), f"duplicate objects: {sorted(keyed)}"
    return keyed


def _label_maps(obj: Any) -> Iterator[dict[str, Any]]:
    """Every label set and label selector in an object, wherever it sits."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("labels", "matchLabels") and isinstance(value, dict):
                yield value
            elif key == "selector" and isinstance(value, dict) and "matchLabels" not in value:
                yield value  # a Service's selector is a plain label map
            yield from _label_maps(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from _label_maps(item)


def _normalise(obj: dict[str, Any], from_helm: bool) -> dict[str, Any]:
    """The object with the chart's and kustomize's intended differences taken out."""
    obj = json.loads(json.dumps(obj))
    if obj["kind"] == "PrometheusRule":
        # The alert rules are compared whole; a rule's own labels (severity) are not k8s labels.
        groups = obj["spec"].pop("groups")
    for labels in _label_maps(obj):
        for key in HELM_ONLY_LABELS & set(labels):
            del labels[key]
    if obj["kind"] == "PrometheusRule":
        obj["spec"]["groups"] = groups
    if obj["kind"] == "ConfigMap" and not from_helm:
        obj["metadata"]["name"] = KUSTOMIZE_HASH.sub("", obj["metadata"]["name"])
    if obj["kind"] == "Deployment":
        pod = obj["spec"]["template"]
        for container in pod["spec"]["containers"]:
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef", {})
                if "name" in ref and not from_helm:
                    ref["name"] = KUSTOMIZE_HASH.sub("", ref["name"])
        if from_helm:
            annotations = pod["metadata"].get("annotations", {})
            assert annotations.pop("checksum/settings", ""), "no checksum: settings would not roll"
            if not annotations:
                pod["metadata"].pop("annotations", None)
    return obj


def _diff(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    a = yaml.safe_dump(theirs, sort_keys=True).splitlines()
    b = yaml.safe_dump(ours, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "kustomize", "helm", lineterm=""))


def _values_for(components: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(s for c in components for s in COMPONENT_VALUES[c])


def _walk(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _walk(value, f"{path}[{i}]")
    else:
        yield path, obj


# --- lint, render, schemas ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        (),
        ("-f", str(CHART / "values-gpu.yaml")),
        *(("--set", ",".join(s)) for s in (ALL_KEDA, ALL_HPA)),
    ],
    ids=["cpu", "gpu", "all-with-keda", "all-with-hpa"],
)
def test_helm_lint_strict_is_clean(extra: tuple[str, ...]) -> None:
    out = _run_helm("lint", "--strict", str(CHART), *extra)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[WARNING]" not in out.stdout and "[ERROR]" not in out.stdout, out.stdout


@VARIANTS
@SET_CASES
def test_chart_renders_and_validates(
    template: Callable[..., Objects], variant: str, sets: tuple[str, ...]
) -> None:
    objects = template(variant, sets)
    kinds = {o["kind"] for o in _by_key(objects).values()}
    assert {"ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceAccount"} <= kinds
    for obj in objects:
        _validate(obj)
    if sets:
        assert {"ServiceMonitor", "PrometheusRule"} <= kinds
        assert ("ScaledObject" in kinds) == (sets == ALL_KEDA)
        assert ("HorizontalPodAutoscaler" in kinds) == (sets == ALL_HPA)


def test_keda_and_the_hpa_together_are_refused() -> None:
    out = _run_helm("template", RELEASE, str(CHART), "--set", "keda.enabled=true,hpa.enabled=true")
    assert out.returncode != 0
    assert "enable one of them" in out.stderr


def test_the_gpu_values_ask_for_a_gpu_and_the_image_tags_are_the_version(
    template: Callable[..., Objects],
) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["appVersion"] == version
    for variant in ("cpu", "gpu"):
        deployment = next(o for o in template(variant) if o["kind"] == "Deployment")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"].endswith(f":{version}-{variant}")
        assert ("nvidia.com/gpu" in container["resources"]["limits"]) == (variant == "gpu")


# --- one description: the chart renders what kustomize renders ---------------------------------


@pytest.mark.parametrize(("overlay", "components"), COMBOS, ids=_combo_id)
def test_chart_matches_kustomize(
    template: Callable[..., Objects],
    tmp_path: Path,
    overlay: str,
    components: tuple[str, ...],
) -> None:
    theirs = _by_key(kustomize(overlay, components, tmp_path))
    ours = _by_key(template(overlay, _values_for(components)))
    theirs = {
        (kind, KUSTOMIZE_HASH.sub("", name) if kind == "ConfigMap" else name): obj
        for (kind, name), obj in theirs.items()
    }
    assert sorted(ours) == sorted(theirs)
    for key, their_obj in theirs.items():
        mine = _normalise(ours[key], from_helm=True)
        theirs_n = _normalise(their_obj, from_helm=False)
        # Labels on the objects themselves: kustomize's are all there; the chart adds the base's
        # labels to the component objects too, and nothing else.
        my_labels = mine["metadata"].pop("labels", {})
        their_labels = theirs_n["metadata"].pop("labels", {})
        assert their_labels.items() <= my_labels.items(), (key, my_labels, their_labels)
        assert set(my_labels) - set(their_labels) <= BASE_LABELS, key
        assert mine == theirs_n, f"{key} differs:\n{_diff(mine, theirs_n)}"


def test_the_comparison_catches_a_drift(template: Callable[..., Objects], tmp_path: Path) -> None:
    """The normalisation is not so broad that a real difference passes."""
    theirs = {o["kind"]: o for o in kustomize("cpu", ("keda",), tmp_path)}
    ours = {o["kind"]: o for o in template("cpu", _values_for(("keda",)))}
    drifts: list[Callable[[dict[str, Any]], None]] = [
        lambda o: o["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(
            readOnlyRootFilesystem=False
        ),
        lambda o: o["spec"]["template"]["metadata"]["labels"].update(tier="x"),
        lambda o: o["spec"]["template"]["spec"]["containers"][0]["env"].pop(),
    ]
    deployment = _normalise(theirs["Deployment"], from_helm=False)
    deployment["metadata"].pop("labels")
    for drift in drifts:
        changed = json.loads(json.dumps(ours["Deployment"]))
        drift(changed)
        mine = _normalise(changed, from_helm=True)
        mine["metadata"].pop("labels")
        assert mine != deployment
    scaled = json.loads(json.dumps(ours["ScaledObject"]))
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = "1000"
    assert _normalise(scaled, True)["spec"] != _normalise(theirs["ScaledObject"], False)["spec"]


def test_chart_alerts_are_the_alerts_file() -> None:
    chart_copy = CHART / "files" / "alerts.yml"
    source = ROOT / "deploy" / "prometheus" / "alerts.yml"
    assert chart_copy.read_bytes() == source.read_bytes(), "out of date: run `make k8s-rules`"


def test_another_release_name_is_self_consistent(template: Callable[..., Objects]) -> None:
    """Every reference between the chart's objects resolves, whatever the release is called."""
    objects = template("gpu", ALL_KEDA, release="reviews")
    keyed = _by_key(objects)
    assert all(name.startswith("reviews") for _, name in keyed)
    deployment = keyed[("Deployment", "reviews")]
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/instance"] == "reviews"
    assert pod["spec"]["serviceAccountName"] == "reviews"
    assert ("ServiceAccount", "reviews") in keyed
    (source,) = pod["spec"]["containers"][0]["envFrom"]
    assert ("ConfigMap", source["configMapRef"]["name"]) in keyed
    service = keyed[("Service", "reviews-metrics")]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    pdb = keyed[("PodDisruptionBudget", "reviews")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    monitor = keyed[("ServiceMonitor", "reviews")]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    scaled = keyed[("ScaledObject", "reviews")]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "reviews"
    auth = scaled["spec"]["triggers"][0]["authenticationRef"]["name"]
    assert ("TriggerAuthentication", auth) in keyed


# --- secrets: references to existing Secrets, never credentials --------------------------------


@VARIANTS
@SET_CASES
def test_the_chart_renders_no_secret(
    template: Callable[..., Objects], variant: str, sets: tuple[str, ...]
) -> None:
    objects = template(variant, (*sets, "schemaRegistry.existingSecret=sentiment-registry"))
    assert not [o for o in objects if o["kind"] == "Secret"]
    for obj in objects:
        for path, value in _walk(obj):
            assert not re.search(r"stringData|\.data\.kafka\.", path), path
            assert value != "change-me"


@pytest.mark.parametrize(
    "values",
    [
        {"kafka": {"password": "hunter2"}},
        {"kafka": {"sasl": {"username": "u", "password": "hunter2"}}},
        {"schemaRegistry": {"username": "u", "password": "hunter2"}},
        {"schemaRegistry": {"basicAuthUserInfo": "u:hunter2"}},
        {"keda": {"sasl": {"password": "hunter2"}}},
        {"settings": {"SENTIMENT_KAFKA_CONFIG": '{"sasl.password": "hunter2"}'}},
        {"secrets": {"kafka.sasl.password": "hunter2"}},
        {"kafka": {"existingSecret": "not a secret name: hunter2"}},
    ],
    ids=lambda v: json.dumps(v)[:40],
)
def test_values_cannot_carry_a_credential(tmp_path: Path, values: dict[str, Any]) -> None:
    """values.schema.json knows every key: a credential in values fails before anything renders."""
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values), encoding="utf-8")
    out = _run_helm("template", RELEASE, str(CHART), "-f", str(values_file))
    assert out.returncode != 0
    assert "schema" in out.stderr
    assert "hunter2" not in out.stdout


def test_shipped_values_hold_no_credential() -> None:
    for values_file in ("values.yaml", "values-gpu.yaml"):
        values = yaml.safe_load((CHART / values_file).read_text(encoding="utf-8"))
        for path, value in _walk(values):
            leaf = path.rsplit(".", 1)[-1].lower()
            if CREDENTIAL_KEY.search(leaf):
                pytest.fail(f"{values_file}: {path} looks like a credential")
            assert not (isinstance(value, str) and "change-me" in value), path


def test_secret_references_are_the_named_existing_secrets(template: Callable[..., Objects]) -> None:
    sets = (*ALL_KEDA, "kafka.existingSecret=team-kafka", "schemaRegistry.existingSecret=team-sr")
    objects = template("cpu", sets)
    keyed = _by_key(objects)
    pod = keyed[("Deployment", RELEASE)]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "kafka-secrets"]
    sources = [s["secret"] for s in volume["projected"]["sources"]]
    # The Kafka Secret stays optional (plaintext clusters); a named registry Secret must exist.
    assert sources == [{"name": "team-kafka", "optional": True}, {"name": "team-sr"}]
    assert volume["projected"]["defaultMode"] == 0o440
    # Mounted read-only where the service looks for its secrets.
    container = pod["containers"][0]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "kafka-secrets"]
    assert mount["readOnly"] is True
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[SECRETS_DIR_ENV] == mount["mountPath"]
    # KEDA reads the service's own Secret.
    auth = next(o for o in objects if o["kind"] == "TriggerAuthentication")
    assert {r["name"] for r in auth["spec"]["secretTargetRef"]} == {"team-kafka"}
    # Without a registry Secret, the plain optional Secret volume of deploy/k8s/base.
    plain = template("cpu", ("kafka.existingSecret=team-kafka",))
    pod = next(o for o in plain if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "kafka-secrets"]
    assert volume["secret"] == {"secretName": "team-kafka", "optional": True, "defaultMode": 0o440}


def test_settings_values_are_settings_the_service_accepts(template: Callable[..., Objects]) -> None:
    """The chart's settings keys and the SENTIMENT_* it sets itself are all real settings."""
    known = {env_name(field) for field in Settings.model_fields} | {SECRETS_DIR_ENV}
    for variant in ("cpu", "gpu"):
        config = next(o for o in template(variant) if o["kind"] == "ConfigMap")
        unknown = sorted(set(config["data"]) - known)
        assert not unknown, f"not settings of consumer/settings.py: {unknown}"
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    reserved = schema["properties"]["settings"]["propertyNames"]["not"]["enum"]
    assert set(reserved) <= known
