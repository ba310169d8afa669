"""End pooling's backward direction as a lookup table over the vocabulary.

End pooling (Paddle's sequence_last_step, Senta's) reads both directions at a text's last token.
The backward LSTM starts there, from a zero state, so its output at that token is its first
step: a function of that token's id alone. Computed once at load for every id, a (V, H) table
replaces the backward recurrence, half of the LSTM's work, with one row lookup per post. The
table and onnx runtimes both use it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from model.network import SentimentClassifier
from model.peephole_lstm import PeepholeLSTM


def backward_first_step(model: SentimentClassifier) -> Tensor:
    """(V, H) float32 on the CPU: row v is the backward direction's output after reading id v."""
    cfg = model.cfg
    if cfg.num_layers != 1 or not cfg.bidirectional:
        raise ValueError("the backward first step is a single bidirectional layer's")
    lstm = model.encoder.lstm
    with torch.inference_mode():
        ids = torch.arange(cfg.vocab_size, device=model.head.weight.device).unsqueeze(1)
        x = model.encoder.embed(ids)  # (V, 1, E): every id as a text of one token
        # The model's own LSTM on one-token texts, so the table is its arithmetic, peepholes
        # or not, rather than a second copy of the gate equations.
        if isinstance(lstm, PeepholeLSTM):
            out, _ = lstm(x, torch.ones(cfg.vocab_size, dtype=torch.long))
        else:
            out, _ = lstm(x)
        return out[:, 0, cfg.hidden_size :].float().cpu().contiguous()  # (V, H)
