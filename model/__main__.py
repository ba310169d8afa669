"""python -m model: label texts without Kafka; JSON lines out.

    echo '这家店太差了，再也不来' | python -m model --model default
    python -m model --model default --input posts.jsonl --text-field text

Input is one text per line, or JSON lines with a text field (detected per line: a line that
parses as a JSON object is read as one). Each output line carries the input's other fields.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import IO, Any

from model.artifact import ArtifactError, load
from model.predictor import Predictor


def _records(stream: IO[str], text_field: str) -> Iterator[tuple[dict[str, Any], str | None]]:
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                text = obj.get(text_field)
                yield obj, text if isinstance(text, str) else None
                continue
        yield {}, line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default="default", help="artifact directory, or 'default'")
    p.add_argument("--input", default="-", help="file to read, '-' for stdin")
    p.add_argument("--text-field", default="text", help="text field of JSON lines")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args(argv)
    try:
        predictor = Predictor(load(args.model, args.device), args.batch_size)
    except (ArtifactError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stream = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")  # noqa: SIM115
    try:
        batch: list[tuple[dict[str, Any], str | None]] = []
        for rec in _records(stream, args.text_field):
            batch.append(rec)
            if len(batch) >= args.batch_size:
                _flush(predictor, batch)
                batch = []
        _flush(predictor, batch)
    finally:
        if stream is not sys.stdin:
            stream.close()
    return 0


def _flush(predictor: Predictor, batch: list[tuple[dict[str, Any], str | None]]) -> None:
    texts = [t for _, t in batch if t is not None]
    preds = iter(predictor.predict(texts))
    for obj, text in batch:
        if text is None:
            out = {**obj, "error": "missing or non-string text field"}
        else:
            pr = next(preds)
            out = {
                **obj,
                "text": text,
                "label": pr.label,
                "score": round(pr.score, 6),
                "probabilities": {k: round(v, 6) for k, v in pr.probabilities.items()},
                "model_version": predictor.loaded.version,
            }
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
