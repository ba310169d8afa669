"""One micro-batch: decode the messages, then one labelling step (encode, infer, explain).

Segmentation happens between the two, in consumer.segmentation, so that the service can run it
beside the model. Every message ends as a labelled post or a dead letter with its reason.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

from confluent_kafka import Message

from consumer import metrics
from consumer.records import DeadLetter, Post, Reader, Reason, decode, now_ms
from consumer.segmentation import Rows
from consumer.settings import Settings
from model.encoding import Encoded
from model.predictor import Prediction, Predictor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Explained(Prediction):
    """A prediction with the tokens that drove its label (SENTIMENT_EXPLAIN_TOP_K)."""

    top_tokens: list[tuple[str, float]] = field(default_factory=list)


def decode_batch(
    batch: list[Message], s: Settings, read: Reader | None = None
) -> tuple[list[Post], list[DeadLetter]]:
    """Decode a consumed batch: the posts, and dead letters for what is not a usable post;
    `read` decodes avro and json_schema input (consumer.schemas.TypedReader)."""
    consumed_at = now_ms()
    posts: list[Post] = []
    dead: list[DeadLetter] = []
    for msg in batch:
        item = decode(
            msg,
            input_format=s.input_format,
            text_field=s.text_field,
            max_bytes=s.max_message_bytes,
            consumed_at_ms=consumed_at,
            read=read,
        )
        if isinstance(item, DeadLetter):
            dead.append(item)
        else:
            posts.append(item)
    return posts, dead


def label(
    predictor: Predictor, posts: list[Post], rows: Rows, explain_top_k: int = 0
) -> tuple[list[tuple[Post, Prediction]], list[Encoded], list[DeadLetter]]:
    """Label segmented posts: (post, prediction) pairs, the encoding behind each (for a shadow
    candidate that encodes alike), and dead letters for posts the tokenizer failed on, posts
    with no tokens, and posts the model failed on.

    The whole batch goes through the model in one call. If that call fails, each post is tried
    on its own, so that one poisonous post costs only itself, not its neighbours.
    """
    dead: list[DeadLetter] = []
    kept: list[tuple[Post, Encoded]] = []
    for post, enc in zip(posts, rows, strict=True):
        if isinstance(enc, str):
            dead.append(_dead(post, Reason.INFERENCE_ERROR, enc))
        elif enc.n_tokens == 0:
            dead.append(_dead(post, Reason.EMPTY_TEXT, "no tokens after normalisation"))
        else:
            kept.append((post, enc))
    if not kept:
        return [], [], dead
    t0 = time.perf_counter()
    try:
        preds = predictor.predict_encoded([enc for _, enc in kept])
        labelled = [(post, pred) for (post, _), pred in zip(kept, preds, strict=True)]
        encoded = [enc for _, enc in kept]
    except Exception as e:
        log.warning("inference failed on a batch of %d (%s); retrying post by post", len(kept), e)
        labelled, encoded = [], []
        for post, enc in kept:
            try:
                labelled.append((post, predictor.predict_encoded([enc])[0]))
                encoded.append(enc)
            except Exception as e1:  # routed to the dead-letter topic with the error text
                dead.append(_dead(post, Reason.INFERENCE_ERROR, e1))
    metrics.INFERENCE.observe(time.perf_counter() - t0)
    if explain_top_k and labelled:
        labelled = _explain(predictor, labelled, encoded, explain_top_k)
    return labelled, encoded, dead


def _explain(
    predictor: Predictor,
    labelled: list[tuple[Post, Prediction]],
    encoded: list[Encoded],
    top_k: int,
) -> list[tuple[Post, Prediction]]:
    """Each prediction with its top tokens; off by default because it costs a backward pass.

    An explanation is an extra: if it fails the labels still go out, without `top_tokens`.
    """
    try:
        tops = predictor.explain_encoded(encoded, top_k)
    except Exception as e:
        log.warning("explanations failed for a batch of %d: %s", len(encoded), e)
        return labelled
    return [(post, Explained(**asdict(pred), top_tokens=top))
            for (post, pred), top in zip(labelled, tops, strict=True)]  # fmt: skip


def _dead(post: Post, reason: Reason, error: object) -> DeadLetter:
    src = post.source
    log.warning("dead letter %s at %s: %s", reason, src.coordinates, error)
    if isinstance(error, Exception):
        error = f"{type(error).__name__}: {error}"
    return DeadLetter(
        reason=reason,
        error=str(error),
        key=post.key,
        value=post.raw,
        headers=post.headers,
        source=src,
    )
