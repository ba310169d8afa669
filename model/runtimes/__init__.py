"""The ways the classifier's forward pass can run, one module each, and auto's choice among them.

Each module declares its runtimes as `Runtime` records (runtime.py) in a tuple `RUNTIMES`;
`REGISTRY` holds them by name, in the order of the modules below, which is the order settings
and benchmarks list them in. Adding a runtime is one module and its line here. Importing this
package loads neither torch nor onnxruntime: a runtime imports its machinery in `build`, so the
service's settings check, which only needs the names, stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from model.runtimes import onnx, table, torch_eager
from model.runtimes.runtime import Runtime

if TYPE_CHECKING:
    import torch

    from model.network import SentimentClassifier

REGISTRY: dict[str, Runtime] = {
    rt.name: rt for module in (torch_eager, onnx, table) for rt in module.RUNTIMES
}
AUTO = "auto"
NAMES = (AUTO, *REGISTRY)

_WHERE = {"cpu": "the CPU", "cuda": "CUDA"}


def resolve(
    name: str, device: torch.device, model: SentimentClassifier | None = None, cores: int = 2
) -> Runtime:
    """The runtime called `name`, checked against the device and model, or auto's choice for a
    process with `cores` CPU cores."""
    if name == AUTO:
        return auto(device, model, cores)
    if name not in REGISTRY:
        raise ValueError(f"runtime must be one of {NAMES}, got {name!r}")
    rt = REGISTRY[name]
    if device.type not in rt.devices:
        where = " or ".join(_WHERE.get(d, d) for d in sorted(rt.devices))
        raise ValueError(
            f"runtime {name} runs on {where} only; use {_instead(device, model)} on {device}"
        )
    if model is not None and (why := rt.refuses(model)) is not None:
        raise ValueError(
            f"runtime {name} cannot run this model: {why}; use {_instead(device, model, name)}"
        )
    return rt


def auto(device: torch.device, model: SentimentClassifier | None = None, cores: int = 2) -> Runtime:
    """The runtime auto runs: by rank, the first that runs on `device`, accepts `model` and
    suits it with `cores` cores. Each runtime's module says why it ranks where it does."""
    for rt in _ranked():
        if _runs(rt, device, model) and rt.auto_suits(model, cores):
            return rt
    raise ValueError(f"no runtime that auto may pick runs on {device}")


def _ranked() -> list[Runtime]:
    ranked = [(rt.auto_rank, rt) for rt in REGISTRY.values() if rt.auto_rank is not None]
    return [rt for _, rt in sorted(ranked, key=lambda pair: pair[0])]


def _runs(rt: Runtime, device: torch.device, model: SentimentClassifier | None) -> bool:
    return device.type in rt.devices and (model is None or rt.refuses(model) is None)


def _instead(device: torch.device, model: SentimentClassifier | None, but: str = "") -> str:
    """The runtimes auto may pick that run on `device` and accept `model`, as prose."""
    *rest, last = [rt.name for rt in _ranked() if rt.name != but and _runs(rt, device, model)]
    return f"{', '.join(rest)} or {last}" if rest else last
