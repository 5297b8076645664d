"""What shapes the duet's next answer beyond the model: a rhythm prompt and a mood.

A **rhythm** (realtime/rhythm.py) fixes each answer note's onset and duration: note k starts
`rhythm.onset_beats(k)` after the answer's first and lasts the pattern's duration, exactly, while
the model hears the nearest of its own buckets and chooses only the pitch (its onset and duration
heads are masked to the pattern's step: Generator.sample_next's `ioi` and `duration`). A **mood**
(realtime/moods.py) sets the answer's tempo and loudness, puts the key's tonic in its mode (the
patch's key, else the one the listener hears), and leans the model's pitch and onset choices
toward its register and density (soft biases on the logits; the key and range stay hard masks).

Both change only between answers: a new pattern (`/rhythm`, taps) or mood (`/mood`) waits for the
next answer, whose start `begin` makes the shape current. Taps: note-ons of `tap_note` on
`tap_channel` are not heard as the phrase (they keep the floor as notes do: the answer waits for the
phrase-end silence after the last tap); the taps since the last answer, two or more, become the pattern (their gaps quantized to a sixteenth at the duet's tempo; the last tap closes
the loop). Nothing here runs per note except `step`, which reads tuples; biases and key masks are
made when a mood is chosen, not when a note is.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import RealtimeError
from ..events import NoteMessage
from ..model.sampling import Constraints, scale_pitch_classes
from ..model.tokens import IOI_BEATS
from ..moods import Mood, choose
from ..rhythm import MAX_STEPS, Rhythm, from_taps, parse_rhythm

REGISTER_SPREAD = 3.0  # semitones: a pitch this far from the mood's register loses e^-0.5 of its weight
DENSITY_PULL = 2.0  # logit lost per squared octave between an onset's gap and the mood's 1 / density
DENSITY_WINDOW = 1.5  # gaps more than this factor off 1 / density are not chosen at all
OFF = ("", "off", "none")  # what `/rhythm` or `/mood` takes to end a pattern or a mood


def mood_leaning(mood: Mood) -> tuple[np.ndarray, np.ndarray]:
    """The mood's preferences: a bias on each of the 128 pitches (soft, toward its register) and on each
    inter-onset bucket (soft toward 1 / density, and none more than DENSITY_WINDOW off it: the model's
    onset head is so sure of its chorale rhythms that a soft pull alone hardly moved the density)."""
    pitch = -0.5 * ((np.arange(128) - mood.register) / REGISTER_SPREAD) ** 2
    ioi = np.empty(len(IOI_BEATS))
    for i, beats in enumerate(IOI_BEATS):  # a chord tone (0 beats) only where a sixteenth's density is in reach
        octaves = math.log2(beats * mood.density) if beats else (-math.inf if mood.density < 2 else -2.0)
        ioi[i] = -math.inf if abs(octaves) > math.log2(DENSITY_WINDOW) + 1e-9 else -DENSITY_PULL * octaves ** 2
    return pitch, ioi


class AnswerShape:
    """The duet's rhythm prompt and mood: pending until an answer begins, fixed for that answer."""

    def __init__(self, rhythm: Rhythm | None = None, mood: Mood | None = None, moods: dict[str, Mood] | None = None,
                 tap_note: int | None = None, tap_channel: int = 9, key_tonic: int | None = None,
                 folder: str | None = None) -> None:
        self.moods = moods or ({mood.name: mood} if mood else {})
        self.tap_note, self.tap_channel = tap_note, tap_channel  # 0-based channel
        self.key_tonic = key_tonic  # the patch's (or command line's) key; None: the listener's
        self.folder = folder  # where a `/rhythm FILE.mid` is looked for
        self.rhythm: Rhythm | None = None  # this answer's
        self.mood: Mood | None = None
        self._pending: dict[str, object] = {"rhythm": rhythm, "mood": mood}
        self._taps: list[int] = []  # note-on times since the last answer began
        self._base: tuple | None = None  # the generator's own constraints and temperature, before any mood
        self._keys: dict[int, Constraints] = {}  # the mood's key on each tonic, made once
        self.taps_taken = 0  # patterns set by taps (the status line's and the tests')

    # --- between answers -----------------------------------------------------------------------
    def is_tap(self, message: NoteMessage) -> bool:
        return message.pitch == self.tap_note and message.channel == self.tap_channel

    def tap(self, message: NoteMessage, at_ns: int) -> None:
        if message.is_on and len(self._taps) <= MAX_STEPS:
            self._taps.append(at_ns)

    def request(self, what: str, text: str) -> str | None:
        """`/rhythm TEXT` or `/mood NAME` (or "off"): kept for the next answer; a one-line error, else None."""
        try:
            if what == "rhythm":
                self._pending["rhythm"] = None if text.strip().lower() in OFF else parse_rhythm(text, self.folder)
            elif what == "mood":
                self._pending["mood"] = None if text.strip().lower() in OFF else choose(self.moods, text, "/mood")
            else:
                return f"/{what}: nothing to shape"
        except RealtimeError as err:
            said = str(err) if what == "mood" else f"/rhythm: {err}"  # a mood's error names /mood already
            return f"{said}; the answer keeps its {'pattern' if what == 'rhythm' else 'mood'}"
        return None

    def next_mood(self):
        """The mood the next answer plays (one asked for, else the current one; None: no mood)."""
        return self._pending["mood"] if "mood" in self._pending else self.mood

    def begin(self, generator, ns_per_beat: float, loudness: float | None, heard_tonic: int | None,
              at_ns: int) -> tuple[float, float | None]:
        """An answer starts: take what waits, steer the generator; returns the answer's ns per beat and loudness."""
        taps = from_taps(self._taps, ns_per_beat)  # kept until the answer is confirmed: a tap may yet cut it in
        if taps is not None:
            self._pending["rhythm"] = taps
        if "rhythm" in self._pending:
            self.rhythm = self._pending.pop("rhythm")
        if "mood" in self._pending and (mood := self._pending.pop("mood")) is not self.mood:
            self._set_mood(generator, mood)
        mood = self.mood
        if mood is None:
            return ns_per_beat, loudness
        tonic = self.key_tonic if self.key_tonic is not None else heard_tonic
        if tonic is not None:
            if tonic not in self._keys:
                base = self._base[0]
                self._keys[tonic] = Constraints(scale_pitch_classes(tonic, mood.mode), base.lowest, base.highest,
                                                base.max_polyphony)
            if generator.constraints is not self._keys[tonic]:
                generator.set_constraints(self._keys[tonic])
        return 60e9 / mood.tempo_bpm, mood.dynamics

    def _set_mood(self, generator, mood: Mood | None) -> None:
        if self._base is None:
            self._base = (generator.constraints, generator.sampler.temperature)
        self.mood, self._keys = mood, {}
        constraints, temperature = self._base
        if mood is None:
            generator.set_constraints(constraints)
            generator.set_leaning()
            generator.sampler.set(temperature=temperature)
            return
        generator.set_leaning(*mood_leaning(mood))
        generator.sampler.set(temperature=mood.temperature or temperature)

    def confirm(self) -> None:
        """The answer is real (its silence lasted): the taps it took are spent."""
        self.taps_taken += len(self._taps) >= 2
        self._taps.clear()

    # --- per note ------------------------------------------------------------------------------
    def step(self, k: int) -> tuple[int | None, int | None]:
        """The (inter-onset, duration) buckets the model must choose for the answer's k-th note; None: free."""
        rhythm = self.rhythm
        if rhythm is None:
            return None, None
        step = k % len(rhythm)
        return (None if k == 0 else rhythm.ioi_buckets[step]), rhythm.duration_buckets[step]

    def describe(self) -> str:
        parts = [f"rhythm {self.rhythm.describe()}"] if self.rhythm else []
        return " | ".join(parts + ([f"mood {self.mood.name}"] if self.mood else []))
