"""A transfer set for distillation (TrainConfig.transfer_variants, transfer_text).

Tang et al. 2019 ("Distilling task-specific knowledge from BERT into simple neural networks")
gained most by letting the student copy its teacher on text the labels never covered. A transfer
row has no label: it enters the loss only through the distillation term, aimed at the teachers'
mean probability for it. So what a variant says need not match its source row's label, which is
why the rules below may drop a negation or cut a post in half: the teacher reads the new text.

Two sources, which may be combined:
- variants of the train split's texts, by Tang et al.'s rules on jieba's words: each word is
  dropped with probability `P_MASK` (a text has no [MASK] token), or else replaced by a word of
  the same part of speech from the train texts with probability `P_POS`; then, with probability
  `P_NGRAM`, only a window of 1-5 words is kept;
- unlabelled texts from files (training.data.read_text_file: lines, JSONL or a CSV's text
  column), such as posts captured from the input topic (training.capture).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from training.data import read_text_file

P_MASK = 0.1
P_POS = 0.1
P_NGRAM = 0.25
MAX_NGRAM = 5


def _tagged(texts: Sequence[str]) -> list[list[tuple[str, str]]]:
    import jieba
    import jieba.posseg

    jieba.setLogLevel(60)
    return [[(p.word, p.flag) for p in jieba.posseg.cut(t)] for t in texts]


def variants(texts: Sequence[str], per_text: float, seed: int) -> list[str]:
    """`per_text` variants of each text, in order (a fraction: that share of the texts gets one
    more); a variant equal to its source or to another variant is left out, so the list may be
    shorter than len(texts) * per_text."""
    if per_text <= 0 or not texts:
        return []
    tagged = _tagged(texts)
    by_pos: dict[str, list[str]] = defaultdict(list)
    for words in tagged:
        for w, pos in words:
            if w.strip():
                by_pos[pos].append(w)
    rng = random.Random(seed)
    seen = set(texts)
    out: list[str] = []
    whole, frac = int(per_text), per_text - int(per_text)
    for words in tagged:
        for _ in range(whole + (rng.random() < frac)):
            kept: list[str] = []
            for w, pos in words:
                r = rng.random()
                if r < P_MASK:
                    continue
                if r < P_MASK + P_POS and by_pos[pos]:
                    w = rng.choice(by_pos[pos])
                kept.append(w)
            if len(kept) > 1 and rng.random() < P_NGRAM:
                n = rng.randint(1, min(MAX_NGRAM, len(kept)))
                start = rng.randrange(len(kept) - n + 1)
                kept = kept[start : start + n]
            text = "".join(kept)
            if text.strip() and text not in seen:
                seen.add(text)
                out.append(text)
    return out


def build(
    train_texts: Sequence[str],
    per_text: float,
    files: str,
    held_out: Sequence[str],
    seed: int,
) -> list[str]:
    """The transfer texts: variants of the distinct train texts, then the files' texts (comma
    separated paths), without duplicates, train texts, or any text of the validation and test
    splits (`held_out`), which must stay unseen by the teacher's signal as by the labels."""
    distinct = list(dict.fromkeys(train_texts))
    texts = variants(distinct, per_text, seed)
    for path in files.split(",") if files else []:
        texts += read_text_file(Path(path))
    excluded = set(distinct) | set(held_out)
    return [t for t in dict.fromkeys(texts) if t not in excluded]


def teacher_probabilities(
    texts: Sequence[str],
    train_texts: Sequence[str],
    train_y: Sequence[int],
    models: Sequence[str],
    labels: Sequence[str],
) -> np.ndarray:
    """The teachers' mean probabilities for `texts`: the linear model fitted on every train row
    (none of them is a transfer text), and each classifier artifact in `models`."""
    from training.linear import LinearModel

    probs = [LinearModel().fit(train_texts, train_y).predict_proba(texts)]
    probs += [model_probabilities(path, texts, labels) for path in models]
    return np.mean(probs, axis=0)


def model_probabilities(path: str, texts: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """A classifier artifact's probabilities for `texts`, its labels checked against ours."""
    from model import artifact
    from model.predictor import Predictor

    teacher = Predictor(artifact.load(path), runtime="auto")
    if teacher.labels != tuple(labels):
        raise ValueError(f"teacher_model {path}: labels {teacher.labels} differ from {labels}")
    return teacher.probabilities(teacher.encode(list(texts))).numpy()
