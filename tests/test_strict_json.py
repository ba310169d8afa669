"""Every JSON the commands print or write parses strictly: no bare NaN or Infinity."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model import strict_json

ROOT = Path(__file__).resolve().parent.parent


def strict_loads(text: str):
    def refuse(name: str):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null_everywhere_in_the_object():
    obj = {"auc": math.nan, "psi": [np.float32("inf"), 1.5], "n": 3, "nested": {"x": -math.inf}}
    assert strict_loads(strict_json.dumps(obj)) == {"auc": None, "psi": [None, 1.5], "n": 3,
                                                    "nested": {"x": None}}  # fmt: skip
    with pytest.raises(ValueError, match="not strict"):
        strict_loads(json.dumps({"auc": math.nan}))  # what the standard library writes


def test_evaluate_on_one_class_prints_roc_auc_as_null(tmp_path):
    data = tmp_path / "one_class.csv"
    data.write_text("text,label\n很好用\tpositive\n".replace("\t", ",") + "非常满意,positive\n",
                    encoding="utf-8")  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "training.evaluate", "--model", "default",
                          "--data", str(data)], cwd=ROOT, capture_output=True, text=True,
                         check=True)  # fmt: skip
    report = strict_loads(out.stdout)
    assert report["n"] == 2 and report["roc_auc"] is None


def test_the_shipped_models_metrics_file_is_strict_json():
    strict_loads((ROOT / "model" / "default" / "metrics.json").read_text("utf-8"))
