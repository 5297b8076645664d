"""The duet tells a model that hears controls what the player's phrase was like: register, density, dynamics, key.

A model trained with controls (`realtime train --controls`, realtime/model/controls.py) hears with
every note a description of the music around it. Without them the duet's answers drift to the
corpus's habits whatever the player plays (benchmarks/follow.py: answers to a phrase around MIDI 44
climbed 16-21 semitones). Here the phrase just heard is measured the way training measured the data
(mean pitch, onsets per beat, mean velocity, pitch-class shares) and written into the control row
when the answer begins.

While the phrase is heard, each note is heard under the phrase so far (its running register, density,
dynamics and key, or a mood's): the model's state is built under the controls the answer will get, not
under the last answer's. Written once at the answer alone, a high phrase after a low answer was
heard as low through its whole length, and the answer to it stayed an octave low (a real-time run
with the stage model; an offline run hid it, since its tentative answers rewrote the row after every
note). The key profile runs too, from the phrase's pitch classes so far; at the answer the whole
phrase is measured again and written once more.

The prediction of the first answer note was made while the model heard the phrase's last note under
the running controls, so that one step is redone from the state saved before it (one extra model step
per answer, in the phrase-end silence) under the exact ones: the first note already follows, as game
mode's refresh does. The saved state is copied into a buffer made once, so hearing a note allocates nothing.

A stage model (engine/stagecontrols.py) is told at the same moment the style (a `/style` or program change
lands at the first answer after its bar line: never mid-answer), the answer's role (melody, or texture when
the phrase was played in chords: 1.5 notes an onset or more) and the chord the listener hears now.
"""

from __future__ import annotations

import numpy as np

from ..listen.keys import KeyTracker, key_of
from ..model import controls as ctl
from ..model.generator import ModelRunner
from ..model.sampling import SCALES
from ..model.tokens import Token
from ..settings import ContinuationSettings
from .stagecontrols import StageControls
from .voicing import chord_tones

CHORD_BEATS = 1 / 16  # onsets closer than this are one onset (a chord), as the tokens' onset 0 bucket
TEXTURE_POLYPHONY = 1.5  # a phrase with this many notes an onset or more was chords: the answer's role is texture


class PhraseControls:
    """The control row of a conditioned duet model, set from each phrase; idle for a model without controls."""

    def __init__(self, runner: ModelRunner, settings: ContinuationSettings) -> None:
        self.runner, self.settings = runner, settings
        index = runner.control_index
        wanted = {"register": settings.follow_register or settings.register is not None,
                  "density": settings.follow_density, "polyphony": settings.follow_density,
                  "dynamics": settings.follow_dynamics, "pc0": settings.follow_key}
        self.stage = StageControls(index, settings.style)
        self.active = runner.controls is not None and (any(wanted[k] and k in index for k in wanted) or self.stage.active)
        self.role: str | None = None  # told to the last answer
        self._index, self._wanted = index, wanted
        self._saved = np.zeros_like(runner.state) if self.active else None  # the state before the last note heard
        self._last: Token | None = None
        self._onsets: list[int] = []
        self._pitches: list[int] = []
        self._sums = [0.0, 0.0, 0, 0]  # the phrase so far: pitch sum, velocity sum, distinct onsets, notes
        self._keys = KeyTracker(decay_s=1e9, margin=0.0)  # the phrase so far's key, every note alike
        self._key_rows: dict = {}  # (tonic, mode) or None -> its key profile
        self._first_ns = self._distinct_ns = 0  # its first and latest distinct onsets
        self.applied: dict[str, float] = {}  # what the last answer was told, for status and tests
        self.key: tuple[int | None, str] | None = None  # the key the last answer was told; None: none told
        self.repeated: frozenset[int] = frozenset()  # pitch classes its phrase played twice or more

    def before_feed(self, token: Token, onset_ns: int, velocity: int = 0, ns_per_beat: float = 0.0,
                    mood=None, restart: bool = False) -> None:
        """A player's note is about to be heard: keep the state before it and the note, and write the
        phrase so far into the control row (with `ns_per_beat` > 0), so the note is heard under it.

        `restart` (fresh_phrases, the phrase's first note): the model starts over first, its start token
        stepped under this note's controls; under the last answer's, a high phrase after a low answer
        kept a pull to the low register through the phrase (the stage model's first answer notes came
        out an octave below it)."""
        if self.active and ns_per_beat > 0:
            self._running(token.pitch, onset_ns, velocity, ns_per_beat, mood)
        if restart:
            self.runner.reset()
            self.runner.start()
        if not self.active:
            return
        np.copyto(self._saved, self.runner.state)
        self._last = token
        self._onsets.append(onset_ns)
        self._pitches.append(token.pitch)

    def _running(self, pitch: int, onset_ns: int, velocity: int, ns_per_beat: float, mood) -> None:
        """The phrase so far, in the control row: sums kept note by note, nothing allocated."""
        sums, s = self._sums, self.settings
        if sums[3] == 0:
            self._first_ns = self._distinct_ns = onset_ns
            sums[2] = 1
        elif (onset_ns - self._distinct_ns) / ns_per_beat > CHORD_BEATS:
            self._distinct_ns = onset_ns
            sums[2] += 1
        sums[0] += pitch
        sums[1] += velocity
        sums[3] += 1
        notes, distinct = sums[3], sums[2]
        if mood is not None:
            self._write("register", mood.register)
            self._write("density", mood.density)
            self._write("dynamics", mood.dynamics)
            return
        if s.register is not None or s.follow_register:
            self._write("register", float(s.register) if s.register is not None else sums[0] / notes)
        if s.follow_density and distinct > 1:
            span = max((self._distinct_ns - self._first_ns) / ns_per_beat, CHORD_BEATS)
            self._write("density", (distinct - 1) / span)
            self._write("polyphony", notes / distinct)
        if s.follow_dynamics and velocity > 0:
            self._write("dynamics", sums[1] / notes)
        if s.follow_key and "pc0" in self._index:
            self._keys.add(pitch % 12, notes)
            start = self._index["pc0"]
            self.runner.controls[0, start:start + 12] = self._profile(*self._keys.estimate()[:2])

    def _write(self, name: str, value: float) -> None:
        index = self._index.get(name)
        if index is not None:
            spec = self.runner.control_specs[index]
            self.runner.controls[0, index] = min(max(value, spec["low"]), spec["high"])

    def measure(self, ns_per_beat: float, velocities: list[int], mood=None) -> dict[str, float]:
        """The phrase's controls in their natural units (those followed), as training measured the data; a mood
        (moods.py), chosen on purpose, says the register, density and dynamics instead of the phrase."""
        out = self._measure(ns_per_beat, velocities)
        if mood is not None:
            out.update(register=mood.register, density=mood.density, dynamics=mood.dynamics)
        return out

    def _measure(self, ns_per_beat: float, velocities: list[int]) -> dict[str, float]:
        out: dict[str, float] = {}
        s, pitches = self.settings, self._pitches
        if s.register is not None or (s.follow_register and pitches):
            out["register"] = float(s.register) if s.register is not None else float(np.mean(pitches))
        if s.follow_density and len(self._onsets) > 1:
            onsets, distinct = self._distinct(ns_per_beat)
            if len(distinct) > 1:
                out["density"] = (len(distinct) - 1) / max(distinct[-1] - distinct[0], CHORD_BEATS)
            out["polyphony"] = len(onsets) / len(distinct)
        if s.follow_dynamics and velocities:
            out["dynamics"] = float(np.mean(velocities))
        if s.follow_key and pitches:
            out["key"] = 1.0
        return out

    def _distinct(self, ns_per_beat: float) -> tuple[np.ndarray, np.ndarray]:
        """The phrase's onsets in beats, sorted, and those that begin a new onset (a chord's notes are one)."""
        onsets = np.sort(np.asarray(self._onsets, dtype=np.float64)) / ns_per_beat
        return onsets, onsets[np.concatenate([[True], np.diff(onsets) > CHORD_BEATS])]

    def apply(self, ns_per_beat: float, velocities: list[int], mood=None, now_ns: int = 0, chord=None) -> None:
        """At the start of an answer: write the phrase's controls (and a stage model's style, role and the
        listener's `chord`), redo the last note's step under them."""
        if not self.active or self._last is None:
            return
        self._stage(ns_per_beat, now_ns, chord)
        measured = self.measure(ns_per_beat, velocities, mood)
        row, index = self.runner.controls[0], self._index
        for name, value in measured.items():
            if name == "key":
                if "pc0" in index:
                    row[index["pc0"]:index["pc0"] + 12] = self._key_profile()
            else:
                self._write(name, value)
        self.applied = {name: float(row[index[name]]) for name in measured if name in index}
        last = self._last
        self.runner.reset(self._saved)
        self.runner.step(last.pitch, last.ioi, last.duration, last.velocity)
        self._last = None  # redone once: a second answer to the same notes does not step it again

    def _stage(self, ns_per_beat: float, now_ns: int, chord) -> None:
        stage, row = self.stage, self.runner.controls[0]
        stage.due(now_ns)
        stage.write_style(row)
        if stage.roles and self._onsets:
            onsets, distinct = self._distinct(ns_per_beat)
            self.role = "texture" if len(onsets) / len(distinct) >= TEXTURE_POLYPHONY else "melody"
            stage.write_role(row, self.role)
        if chord is not None and chord.root is not None and self.role != "melody":
            stage.write_harmony(row, chord_tones(chord.root, chord.quality), chord.root)
        else:
            # no chord heard, or one guessed from a single line: not known (the model learned harmony from
            # voices sounding together; a melody's guessed chord pulled a high answer an octave down)
            stage.write_harmony(row, (), None)

    def _key_profile(self) -> np.ndarray:
        """The key the listener's tracker hears in the phrase, as the key profile game mode gives the same model.

        The phrase's own pitch-class shares (what training measured) kept 88% of answer notes in the
        prompt's key on held-out prompts; the profile of the key heard kept 97% (benchmarks/follow.py).
        """
        self.key = key_of(self._pitches)  # every note of the phrase counts alike
        counts = np.bincount(np.asarray(self._pitches) % 12, minlength=12)
        self.repeated = frozenset(int(pc) for pc in np.flatnonzero(counts >= 2))
        return self._profile(*self.key)

    def _profile(self, tonic: int | None, mode: str) -> np.ndarray:
        """The key profile of a key (None: not known); the 25 profiles are made once, at the first call."""
        if not self._key_rows:
            self._key_rows[None] = ctl.key_histogram(None)
            for root in range(12):
                for scale in SCALES:
                    self._key_rows[(root, scale)] = ctl.key_histogram(
                        frozenset((root + d) % 12 for d in SCALES[scale]), root, scale == "minor")
        return self._key_rows[None if tonic is None else (tonic, mode)]

    def end_phrase(self) -> None:
        """The answer is real: the next phrase is measured from its own notes."""
        self._onsets.clear()
        self._pitches.clear()
        self._sums[:] = (0.0, 0.0, 0, 0)
        self._keys.reset()
