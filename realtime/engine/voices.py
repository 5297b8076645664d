"""Many voices, one model call: each voice has its own state, masks and timeline in one batch.

Every voice (melody, bass, pads, ...) is one row of the model's batch. Choosing a note samples that
voice's row of logits (compiled sampler, generator.py `sample_note`); the notes chosen in one pass are fed back in
a single batched step (`ModelRunner.step_some`), rows that played nothing keeping their state. One
call for 64 voices costs far less than 64 calls, which is what lets many layers fit the budget.

Contract: after construction nothing here allocates per note except the small token tuple; masks
change only at section boundaries.
"""

from __future__ import annotations

import numpy as np

from ..model.generator import ModelRunner, compile_sampler, sample_note
from ..model.modelfile import field_slices
from ..model.tokens import IOI_BEATS

_IOI = np.asarray(IOI_BEATS)
MAX_SOUNDING = 16
EPSILON_BEATS = 1e-9


class VoiceBank:
    """The model streams of n voices: sample per voice, step all that moved in one call."""

    def __init__(self, runner: ModelRunner, seed: int = 0, temperature: float = 1.0, top_p: float = 1.0) -> None:
        self.runner, self.n = runner, runner.batch
        slices = field_slices()
        self._starts = np.array([s.start for s in slices.values()], dtype=np.int64)
        self._pitch = slices["pitch"]
        n_logits = max(s.stop for s in slices.values())
        self.bias = np.zeros((self.n, n_logits))  # -inf where a voice may not play a pitch
        self.inv_temperature = np.full(self.n, 1.0 / temperature)
        self.top_p = top_p
        self.max_polyphony = np.zeros(self.n, dtype=np.int64)  # 0: no limit
        self.controls = runner.controls  # (n, n_controls) or None; the caller writes rows in place
        self.notes = np.zeros((self.n, 4), dtype=np.int64)
        self.advance = np.zeros(self.n, dtype=bool)
        self.logits = np.zeros((self.n, n_logits), dtype=np.float32)
        self.rng = np.random.default_rng(seed)
        self._uniforms, self._out = np.empty(4), np.empty(4, dtype=np.int64)
        self._weights, self._order = np.empty(128), np.empty(128, dtype=np.int64)
        self._no_markov = np.zeros(128)  # the game's voices blend no Markov memory into their pitches
        self._ends = np.zeros((self.n, MAX_SOUNDING))
        self._pitches = np.zeros((self.n, MAX_SOUNDING), dtype=np.int64)
        self._count = np.zeros(self.n, dtype=np.int64)
        self.steps = 0  # batched model calls
        compile_sampler()
        self.reset()

    def reset(self) -> None:
        """Every voice back to silence, primed with the start marker."""
        self.runner.reset()
        self.logits[:] = self.runner.start()
        self._count[:] = 0
        self.notes[:] = 0
        self._previous = self.runner.get_state()  # each voice's state before its last step
        self._refreshable = np.zeros(self.n, dtype=bool)  # voices with a last step that can be redone

    def set_pitch_mask(self, voice: int, allowed: np.ndarray) -> None:
        row = self.bias[voice, self._pitch]
        row[:] = 0.0
        row[~allowed] = -np.inf

    def sample(self, voice: int, time_beats: float, fixed_ioi: int = -1,
               earliest_beats: float | None = None) -> tuple[int, int, int, int]:
        """The voice's next note from its current logits (not fed): pitch, ioi, duration, velocity buckets.

        `time_beats` is the onset of the voice's previous note; `fixed_ioi` forces the onset bucket;
        `earliest_beats` masks onsets before it (music already handed to the output cannot change).
        """
        ends, pitches, count = self._ends[voice], self._pitches[voice], int(self._count[voice])
        first_allowed = 0
        limit = int(self.max_polyphony[voice])
        if fixed_ioi < 0 and limit and count >= limit:  # wait until enough of our notes have ended
            ordered = np.sort(ends[:count])
            first_allowed = int(np.searchsorted(_IOI, ordered[count - limit] - time_beats - EPSILON_BEATS))
            first_allowed = min(first_allowed, len(_IOI) - 1)
        if fixed_ioi < 0 and earliest_beats is not None and earliest_beats > time_beats:
            first_allowed = max(first_allowed, int(np.searchsorted(_IOI, earliest_beats - time_beats - EPSILON_BEATS)))
            first_allowed = min(first_allowed, len(_IOI) - 1)
        self.rng.random(out=self._uniforms)
        sample_note(self.logits[voice], self.bias[voice], self._starts, float(self.inv_temperature[voice]),
                    self.top_p, self._uniforms, fixed_ioi, first_allowed, _IOI, time_beats, ends, pitches, count,
                    self._weights, self._order, self._out, 0.0, self._no_markov)
        out = self._out
        return int(out[0]), int(out[1]), int(out[2]), int(out[3])

    def accept(self, voice: int, note: tuple[int, int, int, int], onset_beats: float, end_beats: float) -> None:
        """The note is played: remember it as sounding, and queue it for the next batched step."""
        ends, pitches = self._ends[voice], self._pitches[voice]
        count = 0
        for k in range(int(self._count[voice])):  # keep only notes still sounding after this onset
            if ends[k] > onset_beats + EPSILON_BEATS:
                ends[count], pitches[count] = ends[k], pitches[k]
                count += 1
        if count < MAX_SOUNDING:
            ends[count], pitches[count] = end_beats, note[0]
            count += 1
        self._count[voice] = count
        self.notes[voice] = note
        self.advance[voice] = True

    def refresh(self) -> None:
        """Redo every voice's last step with its current controls, so its next note already follows them.

        A game parameter moved: without this the next note would still come from a prediction made
        with the old controls, and the change would be heard one note late.
        """
        if not self._refreshable.any():
            return
        self.runner.reset(self._previous)  # voices never stepped: their previous state is their state
        logits = self.runner.step_some(self.notes, self._refreshable)
        np.copyto(self.logits, logits, where=self._refreshable[:, None])
        self.steps += 1

    def forget_sounding(self, voice: int) -> None:
        self._count[voice] = 0

    def step(self) -> int:
        """Feed every queued note in one model call; returns how many voices moved."""
        moved = int(self.advance.sum())
        if moved:
            before = self.runner.state  # the live array: step_some replaces it rather than writing into it
            np.copyto(self._previous, before, where=self.runner.state_rows(self.advance)[None, None, :, None])
            self._refreshable |= self.advance
            logits = self.runner.step_some(self.notes, self.advance)
            np.copyto(self.logits, logits, where=self.advance[:, None])
            self.advance[:] = False
            self.steps += 1
        return moved

