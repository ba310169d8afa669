"""python -m training.capture: a Kafka topic into a JSONL file, for labelling and pretraining.

    python -m training.capture --bootstrap-servers kafka:9092 --topic posts.review \\
        --out review.jsonl [--max 5000] [--group capture-review]

One record a line: the record's JSON value as it is (a result or review record keeps every
field), or {"text": ...} for a value that is not a JSON object. It reads with a consumer group of
its own and stops after --max records, or at the end of the topic as it stood at start. Run it
again and it resumes where it stopped, appending: offsets are committed only after the lines are
written and flushed to disk, so a crash can repeat lines, never lose one. People add a `label`
field to the review records (positive or negative); `training.finetune --data FILE` and
`training.pretrain --data FILE` read the file as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from model import strict_json


def line_of(value: bytes | None) -> str | None:
    if not value:
        return None
    try:
        obj = json.loads(value)
    except (json.JSONDecodeError, UnicodeDecodeError):
        obj = None
    if not isinstance(obj, dict):
        try:
            obj = {"text": value.decode("utf-8")}
        except UnicodeDecodeError:
            return None  # not text at all: nothing a labeller or a language model can use
    return strict_json.dumps(obj, ensure_ascii=False)


def capture(
    bootstrap: str,
    topic: str,
    out: Path,
    max_records: int = 0,
    group: str | None = None,
    progress: bool = True,
    config: dict[str, object] | None = None,
) -> int:
    """Append the topic's records to `out`; returns how many were written this run."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group or f"capture-{topic}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        **(config or {}),
    })  # fmt: skip
    written = skipped = 0
    # "The end of the topic as it stood at start": a partition is done at its end of partition
    # event, or at its first record produced after the start. (Tansu answers ListOffsets for
    # the latest offset with a wrong value, so the high watermark is not asked for up front.)
    started_ms = int(time.time() * 1000)
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        if meta.error is not None:
            raise KafkaException(meta.error)
        parts = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        committed = consumer.committed(parts, timeout=30)
        consumer.assign([TopicPartition(topic, tp.partition,
                                        tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                         for tp in committed])  # fmt: skip
        todo = {tp.partition for tp in parts}
        pending: dict[int, int] = {}
        t_last = time.monotonic()
        with out.open("a", encoding="utf-8") as f:
            while todo and not (max_records and written >= max_records):
                for m in consumer.consume(500, 1.0):
                    p = m.partition() or 0
                    err = m.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            raise KafkaException(err)
                        todo.discard(p)
                        continue
                    ts_type, ts = m.timestamp()
                    if p not in todo or (ts_type != TIMESTAMP_NOT_AVAILABLE and ts > started_ms):
                        todo.discard(p)
                        continue
                    if max_records and written >= max_records:
                        break
                    line = line_of(m.value())
                    if line is None:
                        skipped += 1
                    else:
                        f.write(line + "\n")
                        written += 1
                    pending[p] = (m.offset() or 0) + 1
                if pending:
                    f.flush()
                    os.fsync(f.fileno())
                    done = [TopicPartition(topic, p, o) for p, o in pending.items()]
                    consumer.commit(offsets=done, asynchronous=False)
                    pending.clear()
                if progress and time.monotonic() - t_last > 1.0:
                    t_last = time.monotonic()
                    print(f"\r{written} records written", end="", file=sys.stderr, flush=True)
    finally:
        consumer.close()
    if progress:
        print(f"\r{written} records written to {out}"
              + (f", {skipped} not text skipped" if skipped else ""), file=sys.stderr)  # fmt: skip
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.capture", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--bootstrap-servers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--max", type=int, default=0, help="stop after this many records (0: all)")
    ap.add_argument("--group", default=None, help="consumer group (default capture-<topic>)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        n = capture(args.bootstrap_servers, args.topic, args.out, args.max, args.group,
                    not args.no_progress)  # fmt: skip
    except KafkaException as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(strict_json.dumps({"written": n, "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
