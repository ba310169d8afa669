"""python -m training.evaluate: score a model artifact on a labelled CSV; one JSON object out.

    python -m training.evaluate --model default --data test.csv

The CSV has a header `text,label` with labels positive/negative (or 1/0). The JSON on stdout has
n, accuracy, macro_f1, roc_auc, ece, per_label (precision, recall, f1, support) and
confusion_matrix (rows true, columns predicted). Logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np

from model import strict_json
from model.artifact import load
from model.predictor import Predictor
from training.classification_metrics import classification_report
from training.cli import Invocation, run_main
from training.data import read_file

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default="default", help="artifact directory, or 'default'")
    p.add_argument("--data", required=True, help="CSV (text,label) or JSONL file")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=int, default=256)
    return run_main(p, argv, _evaluate)


def _evaluate(inv: Invocation) -> None:
    args = inv.args
    loaded = load(args.model, inv.device)
    ds = read_file(args.data, labels=loaded.labels)
    if not ds.examples:
        raise ValueError(f"{args.data} has no usable rows ({dict(ds.bad_rows)})")
    predictor = Predictor(loaded, args.batch_size)
    probs = predictor.probabilities(predictor.encode(ds.texts)).numpy()
    report = classification_report(np.asarray(ds.label_ids(loaded.labels)), probs, loaded.labels)
    report["model_version"] = loaded.version
    report["bad_rows"] = dict(ds.bad_rows)
    log.info(
        "%s on %s: accuracy %.4f over %d rows",
        loaded.version,
        args.data,
        report["accuracy"],
        report["n"],
    )
    sys.stdout.write(strict_json.dumps(report))
    sys.stdout.write("\n")


if __name__ == "__main__":
    sys.exit(main())
