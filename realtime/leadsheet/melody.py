"""A melody over the chords: the LSTM chooses every note, the lead sheet limits which pitches it may take.

The generator (realtime/model/generator.py) samples onset, pitch, duration and velocity of each note,
one voice (max polyphony 1). Before the pitch is kept, the onset decides the limits:

- on a strong beat (beat 1, and the bar's middle beat in an even metre): the tones of the chord
  sounding then, in the melody's register;
- elsewhere: the key's scale (natural minor in minor) with the chord's tones outside it in place of
  the scale notes a semitone from them, the tonic kept (over E7 in A minor, G# instead of G), so a
  passing note does not grind against the chord while the melody stays in the key.

The note is sampled once under the limits of the chord sounding when it is asked for; when its onset
falls on a strong beat or under another chord, the pitch (with the same onset) is drawn again under
that onset's limits. Every chord's two limits are precomputed when the progression is set, as pitch
biases the generator copies in (nothing is allocated per note). A seed gives the same melody.

A stage model (realtime/engine/stagecontrols.py) also hears its role (melody), the style, and the chord
sounding where the next note most likely begins (where the note just chosen ends), written when that
chord differs from the last one told: at chord changes, not per note.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..engine.stagecontrols import StageControls
from ..model.generator import Generator
from ..model.tokens import DURATION_BEATS, IOI_BEATS, VELOCITY_LEVELS
from .progression import Chord, Key

ON_BEAT = 1e-6  # beats: an onset this close to a beat is on it (sums of bucket times drift in the last bits)


def strong(beat: float, beats_per_bar: int) -> bool:
    """Beat 1 of a bar, or its middle beat in an even metre (beat 3 of 4/4)."""
    position = beat % beats_per_bar
    marks = (0, beats_per_bar // 2) if beats_per_bar % 2 == 0 and beats_per_bar > 2 else (0,)
    return any(min(abs(position - m), abs(position - m - beats_per_bar)) < ON_BEAT for m in marks)


def fitted_scale(key: Key, chord: Chord) -> frozenset[int]:
    """The key's scale with the chord's tones outside it in place of the scale notes a semitone from them
    (the tonic stays: over E7 in A minor, G# replaces G, and A is kept)."""
    scale = set(key.scale())
    foreign = set(chord.tones) - scale
    kept = {pc for pc in scale if pc == key.tonic or not any((pc - t) % 12 in (1, 11) for t in foreign)}
    return frozenset(kept | set(chord.tones))


def _bias(classes: frozenset[int], lowest: int, highest: int) -> np.ndarray:
    bias = np.full(128, -np.inf)
    for pitch in range(lowest, highest + 1):
        if pitch % 12 in classes:
            bias[pitch] = 0.0
    return bias


class Melody:
    """Notes one after another over a chord lookup (beat -> chord), in beats from the melody's start."""

    def __init__(self, generator: Generator, beats_per_bar: int, lowest: int = 60, highest: int = 84,
                 strong_beats: bool = True, style: str | None = None) -> None:
        self.generator, self.beats_per_bar = generator, beats_per_bar
        self.stage = StageControls(generator.runner.control_index, style)
        self._row = generator.runner.controls[0] if generator.runner.controls is not None else None
        self._heard: Chord | None = None  # the chord the model was told last
        if self._row is not None:
            self.stage.write_style(self._row)
            self.stage.write_role(self._row, "melody")
        self.strong_beats = strong_beats  # False: the fitted scale on every beat (the benchmark's comparison)
        self.lowest, self.highest = lowest, highest
        self._limits: dict[Chord, tuple[np.ndarray, np.ndarray]] = {}  # chord -> (strong, elsewhere)
        self._chord_at: Callable[[float], Chord] | None = None
        self._key: Key | None = None
        self._set: np.ndarray | None = None
        self.reset()

    def reset(self) -> None:
        """The model back to silence; the next note starts the melody at beat 0, on the beat."""
        self.generator.reset()
        self.notes = 0
        self._set = None

    def prepare(self, key: Key, chords: list[Chord], chord_at: Callable[[float], Chord]) -> None:
        """The key, every chord the melody may meet (limits precomputed here) and where each sounds; a new key
        (a live lead sheet's replaced progression) computes every chord's limits anew."""
        if key != self._key:
            self._limits, self._key = {}, key
        for chord in chords:
            if chord not in self._limits:
                self._limits[chord] = (_bias(frozenset(chord.tones), self.lowest, self.highest),
                                       _bias(fitted_scale(key, chord), self.lowest, self.highest))
        self._chord_at = chord_at
        if self._hear(0.0) and self.notes == 0:
            self.generator.reset()  # the first note's prediction, made again under its chord

    def land(self, at: int) -> None:
        """A live style pending for this bar (or earlier) is the melody's from now on."""
        if self.stage.due(at) and self._row is not None:
            self.stage.write_style(self._row)

    def _hear(self, beat: float) -> bool:
        """Tell a model with harmony controls the chord at `beat`, when it is another than the one told last."""
        chord = self._chord_at(beat) if self._row is not None else None
        if chord is None or chord is self._heard:
            return False
        self._heard = chord
        return self.stage.write_harmony(self._row, chord.tones, chord.root)

    def save(self) -> tuple:
        """Where the melody stands (the model's state and prediction, its timeline): a live lead sheet saves it
        before it plans a bar, so a progression replaced before that bar begins can plan it again."""
        g = self.generator
        logits = None if g.runner.logits is None else g.runner.logits.copy()
        return g.runner.get_state(), logits, g.time_beats, list(g.sounding), self.notes

    def restore(self, saved: tuple) -> None:
        state, logits, time_beats, sounding, notes = saved
        g = self.generator
        g.runner.reset(state)
        g.runner.logits = logits
        g.time_beats, g.sounding, self.notes = time_beats, list(sounding), notes
        self._set = None  # the bias copied in last is the plan's that was undone

    @property
    def time(self) -> float:
        """The beat the last note began on (0 before the first)."""
        return self.generator.time_beats

    def _limit(self, beat: float) -> np.ndarray:
        on_strong, elsewhere = self._limits[self._chord_at(beat)]
        return on_strong if self.strong_beats and strong(beat, self.beats_per_bar) else elsewhere

    def _use(self, bias: np.ndarray) -> None:
        if bias is not self._set:
            self.generator.set_pitch_bias(bias)
            self._set = bias

    def next_note(self) -> tuple[float, float, int, int]:
        """(onset beat, length in beats, pitch, velocity) of the next note, heard by the model."""
        generator = self.generator
        first = self.notes == 0
        self._use(self._limit(generator.time_beats))
        token = generator.sample_next(ioi=0 if first else None)  # the first note on beat 1 of the first bar
        onset = generator.time_beats + IOI_BEATS[token.ioi]
        wanted = self._limit(onset)
        if wanted is not self._set:
            self._use(wanted)
            token = generator.sample_next(ioi=token.ioi)
        self._hear(onset + DURATION_BEATS[token.duration])  # before the step that predicts the next note
        generator.commit(token)
        self.notes += 1
        return onset, DURATION_BEATS[token.duration], token.pitch, VELOCITY_LEVELS[token.velocity]
