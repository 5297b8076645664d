"""One model stream stepped one note at a time, its recurrent state owned by the caller.

`ModelRunner` steps a model opened by realtime/model/modelfile.py; `get_state` and `reset(state)` save
and restore the state (the engine rolls back unplayed notes this way). A batch of streams steps in
one call (the game's voices, the critic's candidates). Sampling is elsewhere (generator.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .modelfile import check_controls, open_model
from .tokens import START


class ModelRunner:
    """One model, one stream (or a batch of streams), stepped one note at a time."""

    def __init__(self, path: str | Path, threads: int = 1, batch: int = 1) -> None:
        self.path, self.meta, self.session = open_model(path, threads)
        dims = self.meta["signature"]["dims"]
        self.layers, self.hidden, self.batch = dims["layers"], dims["hidden"], batch
        self._note = np.zeros((batch, 4), dtype=np.int64)
        self._feeds = {"note": self._note, "state": None}
        self.control_specs: list[dict] = check_controls(self.path, self.meta)
        self.control_index = {spec["name"]: spec["index"] for spec in self.control_specs}
        self.controls: np.ndarray | None = None  # (batch, n) fed with every step; None: unconditioned
        if self.control_specs:
            defaults = np.array([spec["default"] for spec in self.control_specs], dtype=np.float32)
            self.controls = np.tile(defaults, (batch, 1))
            self._feeds["control"] = self.controls
        self.logits: np.ndarray | None = None  # (batch, N_LOGITS) after a step; field_slices() cut it
        self.reset()

    def reset(self, state: np.ndarray | None = None) -> None:
        """Back to silence (zero state), or to a state saved by `get_state`."""
        if state is None:
            self._state = np.zeros((2, self.layers, self.batch, self.hidden), np.float32)
        else:
            self._state = state.copy()
        self.logits = None

    def warm_up(self, steps: int = 64) -> None:
        """Run a few throwaway steps so the first real notes do not pay for cold caches; then reset."""
        for i in range(steps):
            self.step(48 + i % 36, 1 + i % 8, i % 10, 4)
        self.reset()

    @property
    def state(self) -> np.ndarray:
        """The current state itself, not a copy: read it, never write into it (get_state copies)."""
        return self._state

    def get_state(self) -> np.ndarray:
        return self._state.copy()

    def start(self) -> np.ndarray:
        """Step the start-of-sequence marker: the model's prediction of a first note."""
        return self.step(START["pitch"], START["ioi"], START["duration"], START["velocity"])

    def step(self, pitch: int, ioi: int, duration: int, velocity: int) -> np.ndarray:
        """Feed one note (token fields) to every stream in the batch; returns (batch, N_LOGITS) logits."""
        self._note[:] = (pitch, ioi, duration, velocity)  # one assignment, broadcast over the batch
        return self.step_batch(self._note)

    def step_batch(self, notes: np.ndarray, controls: np.ndarray | None = None) -> np.ndarray:
        """Feed one note per stream, shape (batch, 4); returns (batch, N_LOGITS) logits.

        A conditioned model takes `controls` (batch, n_controls) float32, else `self.controls`.
        """
        self._feeds["note"], self._feeds["state"] = notes, self._state
        if controls is not None:
            self._feeds["control"] = controls
        elif self.controls is not None:
            self._feeds["control"] = self.controls
        self.logits, self._state = self.session.run(None, self._feeds)
        return self.logits

    def step_some(self, notes: np.ndarray, advance: np.ndarray, controls: np.ndarray | None = None) -> np.ndarray:
        """Step every stream in one call, but keep the new state only where `advance` (bool, batch) is set.

        Streams that did not play a note keep their state; the caller keeps their old logits too.
        One batched call for all streams costs far less than one call per stream that moved.
        """
        old = self._state
        self.step_batch(notes, controls)
        np.copyto(self._state, old, where=~advance[None, None, :, None])
        return self.logits
