"""A one-layer (Bi)LSTM with peephole connections, as Paddle's dynamic_lstm computes it.

nn.LSTM has no peepholes, and Baidu's Senta (training/senta.py) was trained with them: its
input and forget gates also read the previous cell state, its output gate the new one:

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi + p_i * c(t-1))
    f = sigmoid(W_if x + b_if + W_hf h + b_hf + p_f * c(t-1))
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)
    c(t) = f * c(t-1) + i * g
    o = sigmoid(W_io x + b_io + W_ho h + b_ho + p_o * c(t))
    h(t) = o * tanh(c(t))

The parameters are nn.LSTM's, by the same names and in its gate order (i, f, g, o), plus
`peephole_l0[_reverse]` (3, H) holding p_i, p_f and p_o, so weights move between the two by name.
Each text runs over its own length, as packing does for nn.LSTM: the backward direction reads
each row reversed within its length, and a padded step changes no state. It is a Python loop
over time steps in plain PyTorch, so autograd trains it like any module.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PeepholeLSTM(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool = True) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.suffixes = ("", "_reverse") if bidirectional else ("",)
        h = hidden_size
        for s in self.suffixes:
            self.register_parameter(
                f"weight_ih_l0{s}", nn.Parameter(torch.empty(4 * h, input_size))
            )
            self.register_parameter(f"weight_hh_l0{s}", nn.Parameter(torch.empty(4 * h, h)))
            self.register_parameter(f"bias_ih_l0{s}", nn.Parameter(torch.empty(4 * h)))
            self.register_parameter(f"bias_hh_l0{s}", nn.Parameter(torch.empty(4 * h)))
            self.register_parameter(f"peephole_l0{s}", nn.Parameter(torch.empty(3, h)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)  # nn.LSTM's initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _stacked(self, name: str) -> Tensor:
        return torch.stack([getattr(self, f"{name}_l0{s}") for s in self.suffixes])

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, E), lengths (B,) -> (outputs (B, T, D*H), zero on padding; final hidden
        states (D, B, H) as nn.LSTM's h_n: forward at the text's end, backward at its start)."""
        B, T, _ = x.shape
        steps = torch.arange(T, device=x.device)
        lengths = lengths.to(x.device)
        mask = steps < lengths[:, None]  # (B, T)
        # Row b's real steps in reverse, padding left in place: its own inverse.
        rev = torch.where(mask, lengths[:, None] - 1 - steps, steps)  # (B, T)
        inputs = [x, x.gather(1, rev[..., None].expand_as(x))][: len(self.suffixes)]
        w_ih, w_hh = self._stacked("weight_ih"), self._stacked("weight_hh")  # (D, 4H, E|H)
        bias = self._stacked("bias_ih") + self._stacked("bias_hh")  # (D, 4H)
        peep = self._stacked("peephole")  # (D, 3, H)
        p_i, p_f, p_o = peep[:, 0, None], peep[:, 1, None], peep[:, 2, None]  # (D, 1, H)
        # Every step's input gates in one product per direction, outside the loop.
        gates_x = torch.einsum("dbte,dge->dbtg", torch.stack(inputs), w_ih) + bias[:, None, None]
        D, H = len(self.suffixes), self.hidden_size
        h = x.new_zeros(D, B, H)
        c = x.new_zeros(D, B, H)
        w_hh_t = w_hh.transpose(1, 2)  # (D, H, 4H)
        outs = []
        for t in range(T):
            gates = gates_x[:, :, t] + torch.bmm(h, w_hh_t)  # (D, B, 4H)
            i, f, g, o = gates.chunk(4, dim=-1)
            i = torch.sigmoid(i + p_i * c)
            f = torch.sigmoid(f + p_f * c)
            c_new = f * c + i * torch.tanh(g)
            h_new = torch.sigmoid(o + p_o * c_new) * torch.tanh(c_new)
            live = mask[:, t, None]  # (B, 1): past a text's end its state stays as it was
            h = torch.where(live, h_new, h)
            c = torch.where(live, c_new, c)
            outs.append(h_new * live)
        out = torch.stack(outs, dim=2)  # (D, B, T, H)
        if D == 2:  # back to the text's order
            out = torch.stack([out[0], out[1].gather(1, rev[..., None].expand_as(out[1]))])
        return torch.cat(list(out), dim=-1), h  # (B, T, D*H), (D, B, H)
