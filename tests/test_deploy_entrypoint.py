"""The image's command, run here the way the pod runs it, against the real test broker.

The container runs `python -m consumer` (the Dockerfiles' ENTRYPOINT) with the CPU overlay's
settings ConfigMap in its environment. This starts the same command through the shared service
fixture with those settings (only brokers, topics, group and port swapped for the test's), then
checks what Kubernetes and Docker will check: the readiness and liveness probe paths of the
rendered Deployment answer 200, the HEALTHCHECK script passes, posts get labelled, and SIGTERM
ends the process cleanly well inside the Deployment's terminationGracePeriodSeconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Topics, encode, ids_of, posts, produce, read_until, unique
from tests.test_deploy_docker import DOCKER, DOCKERFILES, HEALTHCHECK_SCRIPT, parse

ROOT = Path(__file__).resolve().parents[1]
# Settings the test must own: where the broker, topics, group and port are on this machine, and
# the model (the shipped one, unless SENTIMENT_TEST_MODEL points the tests elsewhere).
LOCAL = {
    "SENTIMENT_MODEL",
    "SENTIMENT_BOOTSTRAP_SERVERS",
    "SENTIMENT_INPUT_TOPIC",
    "SENTIMENT_OUTPUT_TOPIC",
    "SENTIMENT_DLQ_TOPIC",
    "SENTIMENT_GROUP_ID",
    "SENTIMENT_HTTP_PORT",
    "SENTIMENT_SECRETS_DIR",
}


def _rendered_cpu_overlay() -> list[dict[str, Any]]:
    venv_bin = str(Path(sys.executable).parent)
    kubectl = shutil.which("kubectl", path=os.pathsep.join([venv_bin, os.environ["PATH"]]))
    assert kubectl, "kubectl not found: `make deploy-tools` installs it"
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / "cpu")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.integration
def test_image_command_with_the_manifests_settings_serves_probes_and_drains(
    kafka_bootstrap: str,
    make_topics: Callable[..., Topics],
    start_service: Callable[..., Any],
) -> None:
    objects = _rendered_cpu_overlay()
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    configmap = next(o for o in objects if o["kind"] == "ConfigMap")
    manifest_env = {
        k: v for k, v in configmap["data"].items() if k.startswith("SENTIMENT_") and k not in LOCAL
    }
    assert manifest_env, "the ConfigMap should carry settings beyond the local ones"
    assert configmap["data"]["SENTIMENT_MODEL"] == "default"

    topics = make_topics(partitions=2)
    svc = start_service(
        topics,
        unique("deploy"),
        wait=False,
        **{k.removeprefix("SENTIMENT_").lower(): v for k, v in manifest_env.items()},
    )
    for name, value in manifest_env.items():
        assert svc.env[name] == value  # the fixture did not override the manifest's values

    # The command is the image's: ENTRYPOINT with `python` as this venv's interpreter.
    for name in DOCKERFILES:
        (entrypoint,) = parse(DOCKER / name).stages[-1].all("ENTRYPOINT")
        assert ["python", *svc.proc.args[1:]] == json.loads(entrypoint)
    assert Path(svc.proc.args[0]).resolve() == Path(sys.executable).resolve()

    svc.wait_ready()
    for probe in ("readinessProbe", "livenessProbe"):
        status, body = svc.get(container[probe]["httpGet"]["path"])
        assert status == 200, (probe, body)
    health = subprocess.run(
        [sys.executable, str(HEALTHCHECK_SCRIPT)],
        env={**os.environ, "SENTIMENT_HTTP_PORT": str(svc.port)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert health.returncode == 0, health.stderr

    rows = posts(20)
    produce(kafka_bootstrap, topics.input, encode(rows))
    want = {r["id"] for r in rows}
    results = read_until(
        kafka_bootstrap, [topics.output], lambda got: set(ids_of(got)) >= want, timeout=120
    )
    assert set(ids_of(results)) == want

    grace = pod["terminationGracePeriodSeconds"]
    t0 = time.monotonic()
    code = svc.stop(timeout=grace)
    drain = time.monotonic() - t0
    assert code == 0, svc.log()
    assert drain < grace, f"drained in {drain:.1f} s, the pod gets {grace} s"
