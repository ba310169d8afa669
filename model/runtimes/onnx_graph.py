"""The classifier as an ONNX graph, built from its weights, for ONNX Runtime on the CPU.

Built node by node rather than traced: PyTorch's TorchScript exporter is deprecated, and the
torch.export-based one does not take packed sequences. ONNX's own LSTM op takes the sequence
lengths directly (`sequence_lens`), which is what packing does in PyTorch, so the graph computes
the same function: tests check that its probabilities agree with the PyTorch model's.

Peephole LSTMs are ONNX's LSTM with its input `P`. Under end pooling a single bidirectional
layer runs forward only: the backward direction's output at the last token is its first step, a
(V, H) table gathered by the last token's id (model.runtimes.first_step).

Inputs `ids` (B, T) int64 padded with pad_id and `lengths` (B,) int64; output `logits` (B, N).
The artifact stays safetensors; this graph is made from it at load time, in memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from model.network import SentimentClassifier
from model.runtimes.first_step import backward_first_step
from model.runtimes.onnx import unsupported

_OPSET = 17
# PyTorch orders an LSTM's gates input, forget, cell, output; ONNX orders them i, o, f, c.
_GATES_TO_ONNX = (0, 3, 1, 2)
# model.peephole_lstm holds the peepholes input, forget, output; ONNX's P orders them i, o, f.
_PEEPHOLES_TO_ONNX = (0, 2, 1)


def _gates(w: np.ndarray, hidden: int) -> np.ndarray:
    chunks = [w[i * hidden : (i + 1) * hidden] for i in range(4)]
    return np.concatenate([chunks[i] for i in _GATES_TO_ONNX], axis=0)


def build(model: SentimentClassifier) -> Any:
    """An onnx.ModelProto computing model(ids, lengths): the logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    cfg = model.cfg
    if (why := unsupported(model)) is not None:
        raise ValueError(f"{why}; use the torch runtime for this model")
    state = {
        k: v.detach().cpu().numpy() if v.dtype == torch.long else v.detach().float().cpu().numpy()
        for k, v in model.state_dict().items()
    }
    h, dirs = cfg.hidden_size, 2 if cfg.bidirectional else 1
    # End pooling needs a single layer's backward direction at the last token only.
    end_lookup = cfg.pooling == "end" and cfg.num_layers == 1 and dirs == 2
    run_dirs = 1 if end_lookup else dirs
    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    emb = node("Gather", [const("embedding", state["encoder.embedding.weight"]), "ids"], "word")
    if cfg.char_vocab_size:  # + the mean of the token's characters' vectors
        table = const("token_chars", state["encoder.token_chars"].astype(np.int64))
        chars = node("Gather", [table, "ids"], "chars")  # (B, T, K)
        zero = const("zero", np.array(0, dtype=np.int64))
        cmask = node("Cast", [node("Unsqueeze", [node("Not", [node("Equal", [chars, zero],
                     "char_pad")], "char_real"), const("axis3", np.array([3]))], "char_mask4")],
                     "char_mask", to=TensorProto.FLOAT)  # (B, T, K, 1)  # fmt: skip
        cvec = node("Gather", [const("char_embedding", state["encoder.char_embedding.weight"]),
                               chars], "char_vecs")  # (B, T, K, E)  # fmt: skip
        axis2 = const("axis2_chars", np.array([2]))
        csum = node("ReduceSum", [node("Mul", [cvec, cmask], "char_kept"), axis2], "char_sum",
                    keepdims=0)  # fmt: skip
        ccount = node("ReduceSum", [cmask, axis2], "char_count", keepdims=0)
        one_c = const("one_c", np.array(1.0, dtype=np.float32))
        cmean = node("Div", [csum, node("Max", [ccount, one_c], "char_count1")], "char_mean")
        emb = node("Add", [emb, cmean], "word_chars")
    if cfg.cue_kinds:  # + the vector of the token's lexicon cue
        cues = node("Gather", [const("token_cues", state["encoder.token_cues"].astype(np.int64)),
                               "ids"], "cues")  # fmt: skip
        cvecs = node("Gather", [const("cue_embedding", state["encoder.cue_embedding.weight"]),
                                cues], "cue_vecs")  # fmt: skip
        emb = node("Add", [emb, cvecs], "emb")
    x = node("Transpose", [emb], "x0", perm=[1, 0, 2])  # (T, B, E)
    seq_lens = node("Cast", ["lengths"], "seq_lens", to=TensorProto.INT32)
    y_h = ""
    for layer in range(cfg.num_layers):
        ws, rs, bs, ps = [], [], [], []
        for suffix in ["", "_reverse"][:run_dirs]:
            p = f"encoder.lstm.{{}}_l{layer}{suffix}"
            ws.append(_gates(state[p.format("weight_ih")], h))
            rs.append(_gates(state[p.format("weight_hh")], h))
            bs.append(
                np.concatenate(
                    [_gates(state[p.format("bias_ih")], h), _gates(state[p.format("bias_hh")], h)]
                )
            )
            if cfg.peepholes:
                ps.append(state[p.format("peephole")][list(_PEEPHOLES_TO_ONNX)].reshape(-1))
        w = const(f"W{layer}", np.stack(ws))  # (D, 4H, in)
        r = const(f"R{layer}", np.stack(rs))  # (D, 4H, H)
        b = const(f"B{layer}", np.stack(bs))  # (D, 8H)
        inputs = [x, w, r, b, seq_lens]
        if ps:  # after initial_h and initial_c, which stay zero
            inputs += ["", "", const(f"P{layer}", np.stack(ps))]  # (D, 3H)
        y, y_h = f"Y{layer}", f"Yh{layer}"
        nodes.append(
            helper.make_node(
                "LSTM",
                inputs,
                [y, y_h],
                name=f"lstm{layer}",
                hidden_size=h,
                direction="bidirectional" if run_dirs == 2 else "forward",
            )
        )
        yt = node("Transpose", [y], f"Yt{layer}", perm=[0, 2, 1, 3])  # (T, B, D, H)
        x = node("Reshape", [yt, const(f"shape{layer}", np.array([0, 0, -1]))], f"x{layer + 1}")
    out = node("Transpose", [x], "out", perm=[1, 0, 2])  # (B, T, D*H)
    pad = const("pad_id", np.array(cfg.pad_id, dtype=np.int64))
    mask = node("Unsqueeze", [node("Not", [node("Equal", ["ids", pad], "is_pad")], "real"),
                              const("axis2", np.array([2]))], "mask")  # (B, T, 1)  # fmt: skip
    pooled: list[str] = []
    if cfg.pooling == "last" or (cfg.pooling == "end" and (end_lookup or dirs == 1)):
        # A forward direction's final state is its output at the last token.
        last = node("Transpose", [y_h], "last_t", perm=[1, 0, 2])  # (B, D, H)
        pooled.append(node("Reshape", [last, const("flat", np.array([0, -1]))], "last"))
    if cfg.pooling == "end" and dirs == 2:
        end = node("Sub", ["lengths", const("one_i", np.array(1, dtype=np.int64))], "end")  # (B,)
        axis1 = const("axis1_end", np.array([1]))
        end2 = node("Unsqueeze", [end, axis1], "end2")  # (B, 1)
        if end_lookup:  # the backward direction's first step, by the last token's id
            end_id = node("Squeeze", [node("GatherElements", ["ids", end2], "end_ids", axis=1),
                          axis1], "end_id")  # (B,)  # fmt: skip
            back = const("backward_first_step", backward_first_step(model).numpy())  # (V, H)
            pooled.append(node("Gather", [back, end_id], "back_end"))  # (B, H)
        else:  # stacked layers: every direction's output at the last token
            at = node("Expand", [node("Unsqueeze", [end2, const("axis2_end", np.array([2]))],
                      "end3"), const("end_shape", np.array([1, 1, dirs * h]))],
                      "end_at")  # (B, 1, D*H)  # fmt: skip
            gathered = node("GatherElements", [out, at], "end_out", axis=1)  # (B, 1, D*H)
            pooled.append(node("Squeeze", [gathered, axis1], "end_pooled"))  # (B, D*H)
    if cfg.pooling in ("max", "max_mean"):
        neg = const("neg_inf", np.array(-np.inf, dtype=np.float32))
        masked = node("Where", [mask, out, neg], "masked")
        pooled.append(node("ReduceMax", [masked], "max", axes=[1], keepdims=0))
    if cfg.pooling in ("mean", "max_mean"):
        m = node("Cast", [mask], "mask_f", to=TensorProto.FLOAT)
        total = node("ReduceSum", [node("Mul", [out, m], "kept"), const("axis1", np.array([1]))],
                     "total", keepdims=0)  # fmt: skip
        count = node("ReduceSum", [m, "axis1"], "count", keepdims=0)
        one = const("one", np.array(1.0, dtype=np.float32))
        pooled.append(node("Div", [total, node("Max", [count, one], "count1")], "mean"))
    feats = pooled[0] if len(pooled) == 1 else node("Concat", pooled, "pooled", axis=-1)
    if cfg.head_hidden:  # the head's tanh layer
        feats = node("Tanh", [node("Gemm", [feats, const("hidden_w", state["head_hidden.weight"]),
                     const("hidden_b", state["head_hidden.bias"])], "hidden_pre", transB=1)],
                     "hidden")  # (B, head_hidden)  # fmt: skip
    logits = node(
        "Gemm", [feats, const("head_w", state["head.weight"]), const("head_b", state["head.bias"])],
        "logits", transB=1,
    )  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "sentiment",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "time"]),
            helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"]),
        ],
        [helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["batch", cfg.num_labels])],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
    proto.ir_version = 8  # what every supported ONNX Runtime reads
    onnx.checker.check_model(proto)
    return proto


class OnnxForward:
    """logits = f(ids, lengths) with ONNX Runtime, fp32 or with int8 dynamic quantisation.

    int8 quantises the LSTM and dense weights once at load time (activations are quantised per
    batch at run time); benchmarks/inference.py measures its speed and test accuracy.
    """

    def __init__(self, model: SentimentClassifier, int8: bool = False, threads: int = 1) -> None:
        import onnxruntime as ort

        proto = build(model)
        data = _quantised(proto) if int8 else proto.SerializeToString()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Idle intra-op threads sleep instead of spinning: on two threads, end to end on the
        # 2-core machine, spinning cost 0.94 ms of CPU per post against 0.77 for about the same
        # throughput (1,988 against 1,933 posts/s, benchmarks/README.md), CPU that librdkafka,
        # the segmenter and a pod's neighbours can use.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3  # warnings about unused initialisers are noise here
        self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])

    def __call__(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feeds = {"ids": ids.numpy(), "lengths": lengths.numpy()}
        return torch.from_numpy(self.session.run(None, feeds)[0])


def _quantised(proto: Any) -> bytes:
    import logging
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantiser logs advice about pre-processing meant for vision models through the root
    # logger; it does not apply to this graph.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "int8.onnx"
            quantize_dynamic(proto, out, weight_type=QuantType.QInt8)
            return out.read_bytes()
    finally:
        root.setLevel(level)
