"""Command-line flags generated from a config dataclass, shared by the training commands."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any


def parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes"):
        return True
    if s.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def add_config_args(
    p: argparse.ArgumentParser, cls: type, skip: frozenset[str] = frozenset()
) -> None:
    """One `--field-name` flag per field of the dataclass `cls`, defaulting to its default."""
    defaults = cls()
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = f.name.replace("_", " ")
        if not isinstance(p.formatter_class, type) or not issubclass(
            p.formatter_class, argparse.ArgumentDefaultsHelpFormatter
        ):
            help_text += f" (default {default})"
        if isinstance(default, bool):
            p.add_argument(flag, type=parse_bool, default=default, metavar="{true,false}",
                           help=help_text)  # fmt: skip
        else:
            p.add_argument(flag, type=type(default), default=default, help=help_text)


def config_kwargs(
    args: argparse.Namespace, cls: type, skip: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The parsed values of the flags `add_config_args` made, as keyword arguments for `cls`."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.name not in skip}
