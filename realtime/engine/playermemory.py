"""The duet's memory of the player: a Markov model of their phrases, blended into the answer, kept between shows.

Every phrase the player plays is learned once, when it is over (the answer is confirmed), in the
context of the end of their previous phrase, so what they play again and again, and how they go on
from one phrase to the next, become likely. Before the duet draws a pitch, the memory's distribution
after the recent notes (heard and played) takes the share `blend` of the choice (generator.py
`_pitch_weights`); blend 0 leaves the model's choice exactly as it was.

With `[continuation] memory = "player.markov"` the counts are read at start (a damaged or foreign
file: one line, and the memory starts empty) and written at the end of a run and on `/memory/save`
(realtime/model/markovfile.py: JSON, atomic). Threads: the engine thread learns, blends and takes
a copy of the counts when a save is asked for; the session writes that copy outside the loop
(`persist`), and the final counts once the engine thread has stopped.
"""

from __future__ import annotations

import math
import os
from collections import deque
from pathlib import Path

import numpy as np

from ..errors import MemoryFileError
from ..model.markov import MarkovModel
from ..model.markovfile import load_model, save_counts
from ..model.markovkernel import MarkovKernel

MEMORY_ORDER = 4  # notes of context: enough to tell a repeated phrase's place, few enough to generalize
MEMORY_CONTEXTS = 20_000  # ~8 MB at most; past it known contexts still count, new ones are not added


class PlayerMemory:
    """What the duet remembers of the player, its share in the pitch choice, and its file."""

    def __init__(self, path: str | Path | None = None, blend: float = 0.0, max_order: int = MEMORY_ORDER,
                 max_contexts: int = MEMORY_CONTEXTS) -> None:
        self.path = Path(path) if path is not None else None
        self.blend = float(blend)
        self.lines: deque[str] = deque()  # for the user, taken outside the loop by `persist`
        self._unreadable = False  # the file could not be read: kept aside, not overwritten, at the first save
        self.model = self._open(max_order, max_contexts)
        self.kernel = MarkovKernel(self.model)  # the same counts, for the compiled per-note distribution
        self.distribution = np.zeros(self.model.vocab_size)  # the blend's buffer: nothing allocated per note
        self._phrase: list[int] = []
        self._tail: list[int] = []  # the previous phrase's last notes: the context the next one is learned in
        self._requests: deque[tuple[int, dict]] = deque()  # (phrases learned, counts) copied on the engine thread
        self.learned = self.saved = 0  # phrases learned, and learned by the last save written

    def _open(self, max_order: int, max_contexts: int) -> MarkovModel:
        """The file's counts, or an empty memory (with one line saying why) when there is none to read."""
        empty = MarkovModel(max_order, 128, max_contexts, uniform_floor=False)  # no floor: no noise in the blend
        path = self.path
        if path is None:
            return empty
        if not path.exists():
            where = "it is written when the run ends" if path.parent.is_dir() else \
                f"its folder {path.parent} does not exist, so it cannot be saved"
            self.lines.append(f"memory: {path} does not exist yet; starting with an empty memory ({where})")
            return empty
        try:
            model = load_model(path, 128, max_contexts, uniform_floor=False)
        except MemoryFileError as err:
            self._unreadable = path.is_file()
            self.lines.append(f"memory: {err}; starting with an empty memory")
            return empty
        self.lines.append(f"memory: {model.context_count()} contexts (order {model.max_order}) read from {path}")
        return model

    # --- the engine thread ---------------------------------------------------------------------------
    def hear(self, pitch: int) -> None:
        """One of the player's notes, in onset order."""
        self._phrase.append(pitch)

    def end_phrase(self) -> None:
        """The player's phrase is over: learn it, after the end of the one before."""
        if not self._phrase:
            return
        notes = self._tail + self._phrase
        self.kernel.learn(notes, start=len(self._tail))
        order = self.model.max_order
        self._tail, self._phrase = (notes[-order:] if order else []), []
        self.learned += 1

    def blended(self, context: list[int]) -> np.ndarray | None:
        """The memory's distribution of the next pitch after `context` (None while its share is 0)."""
        return self.kernel.distribution_into(context, self.distribution) if self.blend > 0.0 else None

    def set_blend(self, value: float) -> str | None:
        """A live control moved the blend; a value outside 0-1 is refused (returns the line saying so)."""
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            return f"blend {value:g} refused: it must be 0-1 (it stays {self.blend:g})"
        self.blend = float(value)
        return None

    def request_save(self) -> None:
        """`/memory/save`: copy the counts now (a few ms at most), to be written outside the loop."""
        self._requests.append((self.learned, self.model.counts()))

    # --- the session's side, outside the loop ----------------------------------------------------------
    def persist(self, final: bool = False) -> list[str]:
        """Write what was asked for (and, `final`, once the engine thread has stopped, what is new); lines."""
        lines = [self.lines.popleft() for _ in range(len(self.lines))]
        request = None
        while self._requests:  # only the latest copy matters
            request = self._requests.popleft()
        if self.path is None:
            return lines + (["memory: not saved: the patch names no [continuation] memory file"] if request else [])
        if final and self.learned != self.saved:
            request = (self.learned, self.model.counts())
        return lines + ([self._write(*request)] if request is not None else [])

    def _write(self, learned: int, counts: dict) -> str:
        path, aside = self.path, ""
        try:
            if self._unreadable and path.is_file():  # never write over a file this engine could not read
                os.replace(path, path.with_name(path.name + ".unreadable"))
                aside = f" (the unreadable file is now {path.name}.unreadable)"
            self._unreadable = False
            save_counts(path, counts, self.model.max_order, self.model.vocab_size)
        except (MemoryFileError, OSError) as err:
            return f"memory: {err}" if isinstance(err, MemoryFileError) else f"memory: {path}: not saved ({err})"
        self.saved = learned
        return f"memory: {len(counts)} contexts saved to {path}{aside}"
