"""One model stream stepped one note at a time, its recurrent state owned by the caller.

`ModelRunner` steps a model opened by realtime/model/modelfile.py; `get_state` and `reset(state)` save
and restore the state (the engine rolls back unplayed notes this way). A batch of streams steps in
one call (the game's voices, the critic's candidates). Sampling is elsewhere (generator.py).

Style guidance (`guidance` > 0, a model with style controls): each stream is stepped twice in the same
call, once hearing its controls and once with its style group cleared (not known), and the logits it
returns are the first pushed away from the second, `styled + guidance * (styled - unstyled)`, so what
the named style changes in the prediction is heard that much more (classifier-free guidance). The
model learned the style as a weak cue beside the notes; this makes a patch's style audible
(benchmarks/stage_styles.py). The state then holds both halves of the batch (streams 0..B-1 styled,
B..2B-1 not), so it is saved and restored whole; np.repeat of a one-stream state along its batch axis
gives a guided batch of K in that layout (the critic's candidates). With no style set both halves
hear the same and the logits are the model's own: then only the streams are stepped, at the unguided cost.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .modelfile import check_controls, open_model
from .tokens import START


class ModelRunner:
    """One model, one stream (or a batch of streams), stepped one note at a time."""

    def __init__(self, path: str | Path, threads: int = 1, batch: int = 1, guidance: float = 0.0) -> None:
        self.path, self.meta, self.session = open_model(path, threads)
        dims = self.meta["signature"]["dims"]
        self.layers, self.hidden, self.batch = dims["layers"], dims["hidden"], batch
        self.control_specs: list[dict] = check_controls(self.path, self.meta)
        self.control_index = {spec["name"]: spec["index"] for spec in self.control_specs}
        styles = sorted(i for name, i in self.control_index.items() if name.startswith("style_"))
        # guided: every stream twice in one call (rows batch.. hear no style); a model without styles ignores it
        self.guidance = float(guidance) if styles and guidance > 0 else 0.0
        rows = 2 * batch if self.guidance else batch
        self._styles = slice(styles[0], styles[-1] + 1) if styles else slice(0, 0)
        self._note = np.zeros((batch, 4), dtype=np.int64)
        self._all_notes = np.zeros((rows, 4), dtype=np.int64)
        self._advance = np.zeros(rows, dtype=bool)
        self._feeds = {"note": self._note, "state": None}
        self.controls: np.ndarray | None = None  # (batch, n) fed with every step; None: unconditioned
        if self.control_specs:
            defaults = np.array([spec["default"] for spec in self.control_specs], dtype=np.float32)
            self._all_controls = np.tile(defaults, (rows, 1))
            self.controls = self._all_controls[:batch]  # a view: the styled half, which callers write
            self._feeds["control"] = self._all_controls if self.guidance else self.controls
        self._difference: np.ndarray | None = None  # guided: styled minus unstyled logits, made once
        self._half_feeds: dict = {}  # guided with no style named: the streams' feeds alone
        self.logits: np.ndarray | None = None  # (batch, N_LOGITS) after a step; field_slices() cut it
        self.reset()

    def reset(self, state: np.ndarray | None = None) -> None:
        """Back to silence (zero state), or to a state saved by `get_state`."""
        if state is None:
            self._state = np.zeros((2, self.layers, 2 * self.batch if self.guidance else self.batch, self.hidden),
                                   np.float32)
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
        if self.guidance:
            return self._step_guided(notes, controls)
        self._feeds["note"], self._feeds["state"] = notes, self._state
        if controls is not None:
            self._feeds["control"] = controls
        elif self.controls is not None:
            self._feeds["control"] = self.controls
        self.logits, self._state = self.session.run(None, self._feeds)
        return self.logits

    def _step_guided(self, notes: np.ndarray, controls: np.ndarray | None) -> np.ndarray:
        b = self.batch
        every = self._all_controls
        if controls is not None and controls is not self.controls:
            every[:b] = controls
        if not every[:b, self._styles].any():  # no style named: the twins hear the same, one half is stepped
            return self._step_unstyled(notes)
        self._all_notes[:b] = notes
        self._all_notes[b:] = notes
        every[b:] = every[:b]
        every[b:, self._styles] = 0.0
        self._feeds["note"], self._feeds["state"] = self._all_notes, self._state
        logits, self._state = self.session.run(None, self._feeds)
        styled = logits[:b]
        if self._difference is None:
            self._difference = np.empty_like(styled)
        np.subtract(styled, logits[b:], out=self._difference)
        self._difference *= self.guidance
        styled += self._difference
        self.logits = styled
        return styled

    def _step_unstyled(self, notes: np.ndarray) -> np.ndarray:
        """Guided, but no stream names a style: the streams alone, their twins given the same new state (a new
        array, as every step gives: step_some and the game's voices keep the old one)."""
        b = self.batch
        feeds = self._half_feeds
        feeds["note"], feeds["state"], feeds["control"] = notes, np.ascontiguousarray(self._state[:, :, :b]), self.controls
        logits, half = self.session.run(None, feeds)
        state = np.empty_like(self._state)
        state[:, :, :b] = half
        state[:, :, b:] = half
        self._state, self.logits = state, logits
        return logits

    def step_some(self, notes: np.ndarray, advance: np.ndarray, controls: np.ndarray | None = None) -> np.ndarray:
        """Step every stream in one call, but keep the new state only where `advance` (bool, batch) is set.

        Streams that did not play a note keep their state; the caller keeps their old logits too.
        One batched call for all streams costs far less than one call per stream that moved.
        """
        old = self._state
        self.step_batch(notes, controls)
        np.copyto(self._state, old, where=~self.state_rows(advance)[None, None, :, None])
        return self.logits

    def state_rows(self, streams: np.ndarray) -> np.ndarray:
        """A per-stream mask (bool, batch) as a mask of the state's batch axis: itself, or twice when guided
        (both halves of a stream move together). Guided, the same buffer each call: use it before the next."""
        if not self.guidance:
            return streams
        self._advance[:self.batch] = streams
        self._advance[self.batch:] = streams
        return self._advance
