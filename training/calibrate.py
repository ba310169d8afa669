"""Temperature scaling on the validation split, folded into the classifier's head.

    python -m training.calibrate --model runs/ft --out runs/ft-calibrated

One scalar T > 0 is fitted by minimising the validation negative log-likelihood of
softmax(logits / T). Dividing the head's weight and bias by T gives exactly those logits, so the
calibrated artifact is an ordinary artifact: the Predictor, the service and the drift reference
need no new setting, and the version changes with the weights. Accuracy is unchanged (argmax is
scale-invariant); the expected calibration error (ECE) before and after is reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model import artifact, strict_json
from model.network import SentimentClassifier
from model.predictor import batched_probabilities
from training.classification_metrics import classification_report, expected_calibration_error
from training.cli import Invocation, run_main
from training.data import load_source, read_file
from training.pipeline import Prepared, add_to_split, reference_from_validation
from training.train import encode_all

log = logging.getLogger(__name__)


def fit_temperature(log_probs: np.ndarray, y: np.ndarray, max_iter: int = 200) -> float:
    """T minimising NLL of softmax(log_probs / T); log-probs differ from logits by a row constant,
    which the softmax ignores, so either may be passed."""
    z = torch.as_tensor(log_probs, dtype=torch.float64)
    target = torch.as_tensor(y, dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)  # T = exp(log_t) stays > 0
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")
    loss_fn = torch.nn.CrossEntropyLoss()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(z / log_t.exp(), target)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def log_probs_of(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs.astype(np.float64), 1e-300, None))


def scaled_probs(probs: np.ndarray, temperature: float) -> np.ndarray:
    z = log_probs_of(probs) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@torch.no_grad()
def fold_temperature(model: SentimentClassifier, temperature: float) -> None:
    """Make the model's logits equal the old logits / T by rescaling its last layer."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    model.head.weight.div_(temperature)
    model.head.bias.div_(temperature)


def calibrate(
    model: SentimentClassifier, val_ids: list[list[int]], val_y: list[int], device: torch.device
) -> dict[str, float]:
    """Fit T on validation, fold it into `model`, return T and validation ECE/NLL around it."""
    probs = batched_probabilities(model, val_ids, 256, device, model.cfg.num_labels).numpy()
    y = np.asarray(val_y)
    t = fit_temperature(log_probs_of(probs), y)
    after = scaled_probs(probs, t)
    fold_temperature(model, t)

    def nll(p: np.ndarray) -> float:
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None)).mean())

    out = {
        "temperature": t,
        "val_ece_before": expected_calibration_error(probs, y),
        "val_ece_after": expected_calibration_error(after, y),
        "val_nll_before": nll(probs),
        "val_nll_after": nll(after),
    }
    log.info(
        "temperature %.3f: validation ECE %.4f -> %.4f, NLL %.4f -> %.4f",
        t,
        out["val_ece_before"],
        out["val_ece_after"],
        out["val_nll_before"],
        out["val_nll_after"],
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.calibrate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="artifact directory (or 'default')")
    p.add_argument("--out", type=Path, required=True, help="calibrated artifact directory")
    p.add_argument(
        "--source", default=None, help="data whose validation split to use (default: the model's)"
    )
    p.add_argument(
        "--extra-validation",
        default=None,
        help="a labelled file joined to the validation split the temperature is fitted on "
        "(default: the one the model was trained with)",
    )
    p.add_argument("--extra-validation-weight", type=int, default=None)
    p.add_argument("--threads", type=int, default=0)
    return run_main(p, argv, _calibrate)


def _calibrate(inv: Invocation) -> None:
    args = inv.args
    loaded = artifact.load(args.model, "cpu")
    source = args.source or loaded.metrics.get("source")
    if not source:
        raise ValueError("the model's metrics.json names no source; pass --source")
    splits = load_source(source)
    extra_file = args.extra_validation or loaded.metrics.get("extra_validation", {}).get("source")
    weight = 1
    if extra_file:
        weight = args.extra_validation_weight or int(
            loaded.metrics.get("extra_validation_weight", 1)
        )
        add_to_split(splits.validation, read_file(extra_file), weight)
    tok, vocab, labels = loaded.tokenizer, loaded.vocab, loaded.labels
    val_tokens = tok.tokenize_many(splits.validation.texts)
    test_tokens = tok.tokenize_many(splits.test.texts)
    val_y = splits.validation.label_ids(labels)
    test_y = splits.test.label_ids(labels)
    test_ids = encode_all(vocab, test_tokens, loaded.max_len)
    before = classification_report(
        np.asarray(test_y),
        batched_probabilities(loaded.model, test_ids, 256, loaded.device, len(labels)).numpy(),
        labels,
    )
    val_ids = encode_all(vocab, val_tokens, loaded.max_len)
    cal = calibrate(loaded.model, val_ids, val_y, loaded.device)
    test_probs = batched_probabilities(
        loaded.model, test_ids, 256, loaded.device, len(labels)
    ).numpy()
    after = classification_report(np.asarray(test_y), test_probs, labels)
    cal |= {"test_ece_before": before["ece"], "test_ece_after": after["ece"]}
    prep = Prepared(loaded.tokenizer.config, [], val_tokens, test_tokens, [], val_y, test_y, [])
    reference = reference_from_validation(
        loaded.model, vocab, prep, loaded.max_len, loaded.device, splits.validation.texts
    )
    metrics: dict[str, Any] = {**loaded.metrics, "test": after, "calibration": cal}
    if extra_file:  # its figures alone, after the temperature
        rows = read_file(extra_file)
        ids = encode_all(vocab, tok.tokenize_many(rows.texts), loaded.max_len)
        probs = batched_probabilities(loaded.model, ids, 256, loaded.device, len(labels)).numpy()
        report = classification_report(np.asarray(rows.label_ids(labels)), probs, labels)
        metrics["extra_validation"] = {**report, "source": extra_file}
    metrics["command"] = (metrics.get("command") or "") + (
        f" && python -m training.calibrate --model {args.model} --out {args.out}"
        + (f" --extra-validation {extra_file} --extra-validation-weight {weight}" if extra_file
           else "")
    )  # fmt: skip
    if extra_file:
        metrics["extra_validation_weight"] = weight
    extra = {k: v for k, v in json.loads((loaded.path / artifact.CONFIG).read_text()).items()}
    keep = {k: extra[k] for k in ("train_config", "finetune") if k in extra}
    version = artifact.save(
        args.out,
        loaded.model,
        vocab,
        loaded.max_len,
        loaded.tokenizer.config,
        reference,
        metrics,
        extra=keep,
    )
    metrics["version"] = version
    artifact.carry_notice(
        loaded.path, args.out, f"temperature {cal['temperature']:.4f} folded into the head"
    )
    if "history" in metrics and "validation" in metrics:
        from training.report import write_report

        write_report(args.out, metrics, np.asarray(test_y), test_probs, labels)
    print(strict_json.dumps({"version": version, **cal, "test_accuracy": after["accuracy"]}))


if __name__ == "__main__":
    sys.exit(main())
