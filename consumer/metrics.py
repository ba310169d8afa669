"""Prometheus metrics of the service, as module-level objects (prometheus client_python style).

Names follow Prometheus conventions: the `sentiment_` prefix, base units, `_total` counters,
bounded label values. Label sets that are known up front are pre-initialised so dashboards and
alerts see a zero instead of no series.
"""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from consumer.records import Reason

REGISTRY = CollectorRegistry(auto_describe=True)

DLQ_REASONS = tuple(Reason)

MESSAGES_CONSUMED = Counter(
    "sentiment_messages_consumed", "Input messages read from Kafka.", registry=REGISTRY
)
RESULTS_PRODUCED = Counter(
    "sentiment_results_produced",
    "Results acknowledged by the broker on the output topic.",
    ["label"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "sentiment_dead_letters",
    "Messages acknowledged on the dead-letter topic, by reason.",
    ["reason"],
    registry=REGISTRY,
)
DELIVERY_ERRORS = Counter(
    "sentiment_delivery_errors",
    "Produce requests the broker did not acknowledge; the batch is retried, not committed.",
    registry=REGISTRY,
)

BATCH_SIZE = Histogram(
    "sentiment_batch_size",
    "Messages per micro-batch.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048),
    registry=REGISTRY,
)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_WAIT = Histogram(
    "sentiment_batch_wait_seconds",
    "Time spent in consume() filling one micro-batch.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
PREPROCESS = Histogram(
    "sentiment_preprocess_seconds",
    "Decoding, normalisation, segmentation and encoding of one batch.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
INFERENCE = Histogram(
    "sentiment_inference_seconds",
    "Model forward pass for one batch, device synchronised.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
END_TO_END = Histogram(
    "sentiment_end_to_end_latency_seconds",
    "From the input message's Kafka timestamp to the broker acknowledging its result.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)

CONSUMER_LAG = Gauge(
    "sentiment_consumer_lag",
    "Messages behind the high watermark, per assigned partition.",
    ["topic", "partition"],
    registry=REGISTRY,
)
ASSIGNED_PARTITIONS = Gauge(
    "sentiment_assigned_partitions", "Partitions assigned to this member.", registry=REGISTRY
)
REBALANCES = Counter(
    "sentiment_rebalances", "Partition assignments and revocations.", registry=REGISTRY
)
COMMITS = Counter("sentiment_commits", "Offset commits that succeeded.", registry=REGISTRY)
# Read from the service's Health when Prometheus scrapes (set_function in consumer.__main__).
SECONDS_SINCE_PROGRESS = Gauge(
    "sentiment_seconds_since_progress",
    "Seconds since this member last consumed a post or had a batch's results delivered.",
    registry=REGISTRY,
)

MODEL_INFO = Info("sentiment_model", "The model being served.", registry=REGISTRY)
DRIFT_PSI = Gauge(
    "sentiment_drift_psi",
    "Population Stability Index of the recent window against the model's reference.",
    ["feature"],
    registry=REGISTRY,
)
OOV_RATIO = Gauge(
    "sentiment_oov_ratio",
    "Share of tokens outside the vocabulary: the recent window, and the reference value.",
    ["window"],
    registry=REGISTRY,
)
LABEL_SHARE = Gauge(
    "sentiment_label_share",
    "Share of each label in the recent window.",
    ["label"],
    registry=REGISTRY,
)
DRIFT_WINDOW_POSTS = Gauge(
    "sentiment_drift_window_posts",
    "Delivered posts in the drift window (its statistics need at least 100).",
    registry=REGISTRY,
)
MEAN_CONFIDENCE = Gauge(
    "sentiment_mean_confidence",
    "Mean top-label probability in the recent window.",
    registry=REGISTRY,
)
REVIEW_SAMPLES = Counter(
    "sentiment_review_samples",
    "Results acknowledged on the review topic, by why they were picked.",
    ["reason"],
    registry=REGISTRY,
)
REVIEW_DROPPED = Counter(
    "sentiment_review_dropped",
    "Results picked for review but dropped by SENTIMENT_REVIEW_MAX_PER_SECOND.",
    registry=REGISTRY,
)
SHADOW_AGREEMENT = Gauge(
    "sentiment_shadow_agreement_ratio",
    "Share of posts in the drift window where the shadow candidate's label equals the live one.",
    registry=REGISTRY,
)
SHADOW_PSI = Gauge(
    "sentiment_shadow_score_psi",
    "PSI of the shadow candidate's scores against the live model's, over the drift window.",
    registry=REGISTRY,
)
SHADOW_ERRORS = Counter(
    "sentiment_shadow_errors",
    "Batches the shadow candidate failed to score; the live results were unaffected.",
    registry=REGISTRY,
)
SHADOW_INFO = Info(
    "sentiment_shadow_model", "The shadow candidate being scored.", registry=REGISTRY
)
GPU_MEMORY = Gauge(
    "sentiment_gpu_memory_bytes",
    "CUDA memory allocated by the model process.",
    registry=REGISTRY,
)

for _reason in DLQ_REASONS:
    DEAD_LETTERS.labels(reason=_reason)
for _why in ("low_confidence", "random"):
    REVIEW_SAMPLES.labels(reason=_why)
# Drift gauges read NaN, "not known yet", until the drift monitor has a window: a 0 would claim
# the traffic matches the reference before any was seen.
for _feature in ("score", "token_length"):
    DRIFT_PSI.labels(feature=_feature).set(math.nan)
for _window in ("recent", "reference"):
    OOV_RATIO.labels(window=_window).set(math.nan)
MEAN_CONFIDENCE.set(math.nan)
SHADOW_AGREEMENT.set(math.nan)
SHADOW_PSI.set(math.nan)


def init_label_series(labels: tuple[str, ...]) -> None:
    """Pre-initialise the per-label series once the model (and so its label set) is known."""
    for label in labels:
        RESULTS_PRODUCED.labels(label=label)
        LABEL_SHARE.labels(label=label)
