"""A plain-numpy step of the same network: a reference for parity checks and benchmarks.

It reads the weights file written beside each exported graph (`NAME.weights.npz`, the torch
state dict as arrays) and computes one step exactly as torch's LSTM does (gate order i, f, g, o).
It is not on the live path; onnxruntime is faster.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .tokens import FIELDS


def weights_path(graph: Path) -> Path:
    """Where the weights of a graph live: NAME.weights.npz beside NAME.onnx (int8 shares fp32's)."""
    stem = graph.name.removesuffix(".onnx").removesuffix(".int8")
    return graph.with_name(f"{stem}.weights.npz")


class NumpyLSTM:
    """Single-step NoteLSTM in numpy with preallocated state, same inputs and outputs as the graph."""

    def __init__(self, path: str | Path) -> None:
        with np.load(path) as w:
            self.w = {k: w[k].astype(np.float32) for k in w.files}
        self.embed = [self.w[f"embed.{i}.weight"] for i in range(len(FIELDS))]
        self.layers = sum(1 for k in self.w if k.startswith("lstm.weight_ih_l"))
        self.hidden = self.w["lstm.weight_hh_l0"].shape[1]
        self.lstm = [(self.w[f"lstm.weight_ih_l{i}"].T.copy(), self.w[f"lstm.weight_hh_l{i}"].T.copy(),
                      self.w[f"lstm.bias_ih_l{i}"] + self.w[f"lstm.bias_hh_l{i}"]) for i in range(self.layers)]
        self.head_w = np.concatenate([self.w[f"heads.{i}.weight"] for i in range(len(FIELDS))]).T.copy()
        self.head_b = np.concatenate([self.w[f"heads.{i}.bias"] for i in range(len(FIELDS))])
        self.reset()

    def reset(self) -> None:
        self.state = np.zeros((2, self.layers, 1, self.hidden), np.float32)

    def step(self, pitch: int, ioi: int, duration: int, velocity: int) -> np.ndarray:
        """One note in; returns (1, n_logits) and keeps the new state, like ModelRunner.step."""
        x = np.concatenate([table[i] for table, i in zip(self.embed, (pitch, ioi, duration, velocity))])
        H = self.hidden
        for layer, (w_ih, w_hh, bias) in enumerate(self.lstm):
            h, c = self.state[0, layer, 0], self.state[1, layer, 0]
            gates = x @ w_ih + h @ w_hh + bias
            i, f = _sigmoid(gates[:H]), _sigmoid(gates[H:2 * H])
            g, o = np.tanh(gates[2 * H:3 * H]), _sigmoid(gates[3 * H:])
            c = f * c + i * g
            h = o * np.tanh(c)
            self.state[0, layer, 0], self.state[1, layer, 0] = h, c
            x = h
        return (x @ self.head_w + self.head_b)[None, :]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
