"""The classifier on the CPU with its input side folded into lookup tables (the table runtime).

A token's vector (word, plus the mean of its characters' vectors, plus its cue's) and so its
LSTM input gates, W_ih x + b_ih + b_hh, depend on nothing but its vocabulary id. They are
computed once at load time for every id, per direction: a (V, 4H) table. At run time a step's
input gates are one row lookup, which removes half of the LSTM's multiply-adds and all of the
embedding arithmetic; ONNX Runtime already ran them near this CPU's peak, so fewer of them is
what is left to gain (benchmarks/README.md).

The recurrence runs in PyTorch over the rows sorted longest first. At each step only the rows
still inside their text take part, as packing does, so padding costs nothing and a chunk may be
large; max and mean pooling are kept as a running max and sum, so no (T, B, 2H) output is ever
built. The probabilities are the PyTorch model's to within float rounding (tests check 1e-5).
Each time step is a handful of PyTorch calls from Python, which hold the GIL between them, so
the runtime uses one core: chunks side by side on threads only contend (benchmarks/README.md).

The runtime's record, the models it folds and what its tables cost are in table.py.
"""

from __future__ import annotations

import torch
from torch import Tensor

from model.network import SentimentClassifier
from model.runtimes.table import unsupported


def _folded(
    emb: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor
) -> tuple[Tensor, Tensor]:
    """One direction's (input-gate table (V, 4H), recurrent weights (H, 4H)).

    The gates are reordered (input, forget, output, cell) so that one sigmoid covers all four,
    and the cell gate's pre-activation is doubled: tanh(x) = 2 sigmoid(2x) - 1, and PyTorch's
    tanh runs about 6x slower than its sigmoid on this CPU.
    """
    h = w_hh.shape[1]
    order = torch.cat([torch.arange(0, 2 * h), torch.arange(3 * h, 4 * h),
                       torch.arange(2 * h, 3 * h)])  # fmt: skip
    scale = torch.ones(4 * h)
    scale[3 * h :] = 2.0
    table = (emb @ w_ih.T + b_ih + b_hh)[:, order] * scale
    return table.contiguous(), (w_hh[order].T * scale).contiguous()


class TableForward:
    """logits = f(ids, lengths) for padded ids (B, T) and lengths (B,), on the CPU.

    The backward direction reads each text reversed, so both directions are the same forward
    recurrence over left-aligned rows of the same lengths: each step runs both at once, as one
    batched product over (D, rows, H), which halves the Python steps per post.
    """

    def __init__(self, model: SentimentClassifier) -> None:
        why = unsupported(model)
        if why is not None:
            raise ValueError(f"the table runtime cannot run this model: {why}")
        cfg = model.cfg
        self.hidden = cfg.hidden_size
        self.pooling = cfg.pooling
        self.vocab = cfg.vocab_size
        lstm = model.encoder.lstm
        with torch.inference_mode():
            emb = model.encoder.embed(torch.arange(cfg.vocab_size).unsqueeze(0))[0]  # (V, E)
            emb = emb.float().cpu()
            folded = [
                _folded(emb, *(getattr(lstm, f"{name}_l0{suffix}").detach().float().cpu()
                               for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
                for suffix in (["", "_reverse"] if cfg.bidirectional else [""])
            ]  # fmt: skip
            # Direction d's row for id v is table[d * V + v].
            self.table = torch.cat([t for t, _ in folded]).contiguous()  # (D*V, 4H)
            self.recurrent = torch.stack([r for _, r in folded])  # (D, H, 4H)
            self.head_w = model.head.weight.detach().float().cpu().T.contiguous()  # (F, N)
            self.head_b = model.head.bias.detach().float().cpu()

    @torch.inference_mode()
    def __call__(self, ids: Tensor, lengths: Tensor) -> Tensor:
        lengths, order = lengths.sort(descending=True, stable=True)
        steps = int(lengths[0])
        fwd = ids[order, :steps]  # (B, T), longest first: each step's live rows are a prefix
        rows = [fwd]
        if len(self.recurrent) == 2:  # each row's own tokens reversed, still left-aligned
            idx = (lengths.unsqueeze(1) - 1 - torch.arange(steps)).clamp(min=0)  # (B, T)
            rows.append(fwd.gather(1, idx) + self.vocab)
        ids_t = torch.stack(rows).permute(2, 0, 1).contiguous()  # (T, D, B)
        # live[t]: how many rows are still inside their text at step t
        live = (lengths.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(1).tolist()
        top, total, last = (torch.cat(list(x), dim=-1) for x in self._run(ids_t, live))
        # each (B, D*H): joins the directions as PyTorch's LSTM output does
        if self.pooling == "last":
            pooled = last
        elif self.pooling == "max":
            pooled = top
        else:
            mean = total / lengths.unsqueeze(1)
            pooled = mean if self.pooling == "mean" else torch.cat([top, mean], dim=-1)
        logits = torch.addmm(self.head_b, pooled, self.head_w)  # (B, N)
        out = torch.empty_like(logits)
        out[order] = logits
        return out

    def _run(self, ids_t: Tensor, live: list[int]) -> tuple[Tensor, Tensor, Tensor]:
        """(running max, running sum, state at each row's end), each (D, B, H)."""
        h = self.hidden
        dirs, rows = ids_t.shape[1], ids_t.shape[2]
        state = torch.zeros(dirs, rows, h)
        cell = torch.zeros(dirs, rows, h)
        squashed = torch.empty(dirs, rows, h)
        top = torch.full((dirs, rows, h), float("-inf"))
        total = torch.zeros(dirs, rows, h)
        table, recurrent = self.table, self.recurrent
        pool = self.pooling != "last"
        for t, k in enumerate(live):
            s, c, sq = state[:, :k], cell[:, :k], squashed[:, :k]
            g = table.index_select(0, ids_t[t, :, :k].reshape(-1)).view(dirs, k, 4 * h)
            g.baddbmm_(s, recurrent)
            g.sigmoid_()  # i, f, o, and sigmoid(2 x) of the cell gate
            cand = g[..., 3 * h :].mul_(2.0).sub_(1.0)  # tanh of the cell gate
            c.mul_(g[..., h : 2 * h]).addcmul_(g[..., :h], cand)
            torch.mul(c, 2.0, out=sq).sigmoid_().mul_(2.0).sub_(1.0)  # tanh(c)
            torch.mul(sq, g[..., 2 * h : 3 * h], out=s)
            if pool:
                torch.maximum(top[:, :k], s, out=top[:, :k])
                total[:, :k] += s
        return top, total, state
