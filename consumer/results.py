"""A labelled batch as the records to write: one result per post on the output topic, and the
picks of the review sampler on the review topic (consumer.review), each with the model version in
a header, the tokens that drove its label when explanations are on and, when a shadow candidate
runs with SENTIMENT_SHADOW_IN_RESULTS, its label beside the live one. With SENTIMENT_OUTPUT_FORMAT
avro or json_schema a `writer` (consumer.schemas.TypedWriter) writes them as typed records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from consumer import metrics
from consumer.batch import Explained
from consumer.delivery import Outgoing
from consumer.records import H_MODEL_VERSION, Post, now_ms, result_value, typed_result
from consumer.review import ReviewSampler
from consumer.settings import Settings
from model.predictor import Prediction

# Topic and typed result record to the bytes to write (consumer.schemas.TypedWriter).
Writer = Callable[[str, dict[str, Any]], bytes]


class Results:
    def __init__(
        self,
        s: Settings,
        labels: tuple[str, ...],
        version: str,
        shadow_version: str | None,
        writer: Writer | None = None,
    ) -> None:
        self.topic, self.version = s.output_topic, version
        self.writer, self.text_field = writer, s.text_field
        self.headers = [(H_MODEL_VERSION, version.encode())]
        self.counters = {lb: metrics.RESULTS_PRODUCED.labels(label=lb) for lb in labels}
        self.shadow_version = shadow_version if s.shadow_in_results else None
        self.review_topic = s.review_topic
        self.review = (
            ReviewSampler(s.review_max_confidence, s.review_sample_rate, s.review_max_per_second)
            if s.review_topic else None
        )  # fmt: skip

    def records(
        self, labelled: list[tuple[Post, Prediction]], shadow: list[Prediction] | None
    ) -> list[Outgoing]:
        """The batch's results and review picks: one batch, one delivery."""
        done_at = now_ms()
        out = []
        for i, (post, pred) in enumerate(labelled):
            extra: dict[str, Any] = {}
            if isinstance(pred, Explained):
                extra["top_tokens"] = [[tok, round(w, 4)] for tok, w in pred.top_tokens]
            if shadow is not None and self.shadow_version is not None:
                cand = shadow[i]
                extra["shadow"] = {"label": cand.label, "score": round(cand.score, 6),
                                   "model_version": self.shadow_version}  # fmt: skip
            value = self._value(self.topic, post, pred, done_at, extra)
            out.append(Outgoing(self.topic, post.key, value, self.headers,
                                self.counters[pred.label], post.source))  # fmt: skip
            why = self.review.reason(pred.confidence) if self.review is not None else None
            if why is not None:
                review = self._value(self.review_topic, post, pred, done_at,
                                     {**extra, "review_reason": why})  # fmt: skip
                counter = metrics.REVIEW_SAMPLES.labels(reason=why)
                out.append(Outgoing(self.review_topic, post.key, review, self.headers, counter,
                                    None))  # fmt: skip
        return out

    def _value(
        self, topic: str, post: Post, pred: Prediction, done_at: int, extra: dict[str, Any]
    ) -> bytes:
        if self.writer is None:
            return result_value(post, pred, self.version, done_at, extra)
        record = typed_result(post, pred, self.version, done_at, self.text_field, extra)
        return self.writer(topic, record)
