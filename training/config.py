"""The flat names of the configs that nest the network's hyperparameters (model.network).

TrainConfig and PretrainConfig each hold a `NetworkConfig` in their field `network`. Outside the
code the network's fields stay flat, as they always were: the command line says
`--hidden-size 64` and an artifact's `train_config` says `"hidden_size": 64`. `nest` and
`flatten` translate between the two forms, and `flat_keywords` lets a config be built in the
flat form too: `TrainConfig(hidden_size=64)` is `TrainConfig(network=NetworkConfig(
hidden_size=64))`.
"""

from __future__ import annotations

import functools
from dataclasses import MISSING, asdict, fields, is_dataclass, replace
from typing import Any, TypeVar

C = TypeVar("C", bound=type)


def nested_defaults(cls: type) -> dict[str, Any]:
    """The fields of the dataclass `cls` that hold a config of their own, with their defaults."""
    out = {}
    for f in fields(cls):
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        if is_dataclass(default) and not isinstance(default, type):
            out[f.name] = default
    return out


def nest(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for `cls`, the nested configs' fields (given flat) moved into them."""
    out = dict(kwargs)
    for name, default in nested_defaults(cls).items():
        inner = {f.name: out.pop(f.name) for f in fields(default) if f.name in out}
        if inner:
            out[name] = replace(out.get(name, default), **inner)
    return out


def flatten(cfg: Any) -> dict[str, Any]:
    """`asdict(cfg)` with each nested config's fields in its place: the flags' form."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value) and not isinstance(value, type):
            out.update(asdict(value))
        else:
            out[f.name] = value
    return out


def flat_keywords(cls: C) -> C:
    """Let the dataclass `cls` also take its nested configs' fields as keyword arguments."""
    init = vars(cls)["__init__"]

    @functools.wraps(init)
    def init_with_flat_fields(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **nest(cls, kwargs))

    cls.__init__ = init_with_flat_fields  # type: ignore[misc]
    return cls
