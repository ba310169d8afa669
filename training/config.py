"""The network's hyperparameters, declared once, and the flat names of the configs nesting them.

TrainConfig and PretrainConfig each hold a `NetworkConfig` in their field `network`. Outside the
code the network's fields stay flat, as they always were: the command line says
`--hidden-size 64` and an artifact's `train_config` says `"hidden_size": 64`. `nest` and
`flatten` translate between the two forms, and `flat_keywords` lets a config be built in the
flat form too: `TrainConfig(hidden_size=64)` is `TrainConfig(network=NetworkConfig(
hidden_size=64))`.
"""

from __future__ import annotations

import functools
from dataclasses import MISSING, asdict, dataclass, fields, is_dataclass, replace
from typing import Any, TypeVar

from model.network import ClassifierConfig

C = TypeVar("C", bound=type)


@dataclass(frozen=True)
class NetworkConfig:
    """What model.network builds: embedding and (Bi)LSTM sizes, their dropout and the pooling.

    The classifier's defaults; the language model starts from its own (training.pretrain).
    """

    embed_dim: int = 128
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.4
    embed_dropout: float = 0.2
    pooling: str = "max_mean"

    def __post_init__(self) -> None:
        # model.network's own checks, run now: a bad flag fails before any data is read.
        self.classifier_config(vocab_size=3)

    def classifier_config(self, vocab_size: int, **tables: Any) -> ClassifierConfig:
        """This network over `vocab_size` tokens; `tables` sets the rest (labels, token tables)."""
        return ClassifierConfig(vocab_size=vocab_size, **asdict(self), **tables)


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
