"""The benchmark scripts keep running: each is run here on tiny sizes, so none can rot unseen.

They measure; these tests only check that they finish, print their tables and lose nothing.
The figures themselves belong in benchmarks/README.md, from full runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def run(cmd: list[str], timeout: float = 300) -> str:
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONUNBUFFERED": "1"}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_gpu_check_dry_run_prints_its_table_and_loses_nothing():
    out = run(["bash", "benchmarks/gpu_check.sh", "--dry-run"])
    assert "| model alone | torch, batch 256 |" in out
    assert "| end to end | 1 segmenter worker(s)" in out
    assert "| end to end | 2 segmenter worker(s)" in out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary == {"lost": 0, "model_rows": 2, "e2e_rows": 2}


def test_segmenter_benchmark_reports_both_backends():
    out = run([sys.executable, "-m", "benchmarks.segmenter_backends", "--gold-lines", "200",
               "--repeats", "1"])  # fmt: skip
    rows = [line for line in out.splitlines() if line.startswith(("| jieba", "| rjieba"))]
    assert len(rows) == 2
    assert rows[0].split("|")[4].strip() == "100.0%"  # jieba agrees with itself


def test_chunk_benchmark_reports_each_layout_per_chunk_size():
    out = run([sys.executable, "-m", "benchmarks.chunks", "--posts", "300", "--chunks", "8,64",
               "--repeats", "1"])  # fmt: skip
    rows = [line for line in out.splitlines() if line.startswith("| 8 |") or
            line.startswith("| 64 |")]  # fmt: skip
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 5 and all(float(c.replace(",", "").rstrip("%")) > 0 for c in cells)
    assert "padded to one post of 100 tokens" in out


def test_capacity_benchmark_drains_a_backlog_and_reports_each_variant():
    out = run([sys.executable, "-m", "benchmarks.capacity", "--posts", "2000", "--rounds", "1",
               "--variant", "table:SENTIMENT_INFERENCE_RUNTIME=table"])  # fmt: skip
    rows = [line for line in out.splitlines() if line.startswith("| table | 1 |")]
    assert len(rows) == 1, out
    cells = [float(c.strip().replace(",", "")) for c in rows[0].strip("|").split("|")[2:]]
    # posts/s, wall, forward pass, segmentation, service CPU, broker CPU
    assert len(cells) == 6 and all(c > 0 for c in cells[:5]), rows


def test_benchmark_variants_take_only_service_settings():
    import argparse

    from benchmarks.end_to_end import variant

    assert variant("t:SENTIMENT_INFERENCE_RUNTIME=table,SENTIMENT_X=a=b") == (
        "t", {"SENTIMENT_INFERENCE_RUNTIME": "table", "SENTIMENT_X": "a=b"})  # fmt: skip
    assert variant("plain:") == ("plain", {})
    for bad in ("no-colon-value=1", ":SENTIMENT_X=1", "t:PATH=/tmp", "t:SENTIMENT_X"):
        with pytest.raises(argparse.ArgumentTypeError):
            variant(bad)
