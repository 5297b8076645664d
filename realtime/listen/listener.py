"""The listener: what the player is doing, as any mode (and the status line, and OSC) may read it.

The engine thread calls `hear(message, at_ns)` for each of the player's notes (O(1): a few list
stores, no numpy) and `refresh(now_ns)` once per tick, which re-analyses only what changed
(chord and key after notes, tempo after a new onset: tens of microseconds) and publishes an
immutable state by swapping one reference. `snapshot(now_ns)` may be called from any thread: it
reads that reference and adds what depends only on the time (beat phase, density, dynamics).

- chord: realtime/listen/chords.py over the pitch classes held in the zone (every note, or those
  below `split_pitch`); while fewer than three are held, notes released in the last
  `chord_release_ms` still count, fading (an arpeggio), unless two or more notes were struck
  together since (a new chord). The last chord recognized stands until another is.
- key: realtime/listen/keys.py; tempo and beat phase: realtime/listen/tempo.py (the playing, or a
  MIDI clock fed to `on_raw_midi` from the input's thread, when `tempo_source = "midi_clock"`).
- density (notes per beat) and dynamics (mean velocity) over a memory of `dynamics_decay_s`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..events import NoteMessage
from ..settings import ListenSettings
from .chords import chord_name, match
from .keys import KeyTracker
from .tempo import CHORD_GAP_NS, ClockTempo, TempoTracker

PITCH_CLASSES = 12
KEYS = 16 * 128  # (channel, pitch)
MAX_NOTE_NS = 30_000_000_000  # a note held longer than this is taken as ended (its note-off was lost)
FADE_SPAN = 4.0  # released notes stop counting after this many chord_release_ms


@dataclass(frozen=True, slots=True)
class Chord:
    root: int | None  # pitch class 0-11; None: no chord heard yet
    quality: str  # a key of chords.QUALITIES ("maj", "m7", ...); "" with no root
    confidence: float  # 0-1
    pitch_classes: tuple[int, ...]  # what sounded when it was recognized
    bass: int | None  # the lowest of them, as a pitch class

    @property
    def name(self) -> str:
        return chord_name(self.root, self.quality)


@dataclass(frozen=True, slots=True)
class Key:
    tonic: int | None
    mode: str  # "major" or "minor"
    confidence: float  # the profile's correlation with what was played, 0-1

    @property
    def name(self) -> str:
        return "-" if self.tonic is None else f"{chord_name(self.tonic, 'maj')} {self.mode}"


@dataclass(frozen=True, slots=True)
class Tempo:
    bpm: float | None  # None: not enough onsets yet
    locked: bool  # the estimate is trustworthy (modes may follow it)
    source: str  # "playing" or "midi_clock"
    anchor_ns: int  # a moment a beat fell on
    ns_per_beat: float

    def phase(self, at_ns: int) -> float:
        """Where in the beat a moment falls, 0-1 (0 on the beat); 0 without a tempo."""
        return ((at_ns - self.anchor_ns) / self.ns_per_beat) % 1.0 if self.bpm else 0.0


@dataclass(frozen=True, slots=True)
class ListenState:
    at_ns: int
    chord: Chord
    key: Key
    tempo: Tempo
    phase: float  # beat phase at at_ns
    density: float  # notes per beat (at the tracked tempo once locked, else the patch's)
    dynamics: float  # mean velocity, recent notes weighing most; 0 before any note

    def line(self) -> str:
        """The status line's part: chord, key, tempo."""
        tempo = "tempo -" if self.tempo.bpm is None else (
            f"{self.tempo.bpm:.1f} BPM {'locked' if self.tempo.locked else 'searching'}")
        return f"chord {self.chord.name} {self.chord.confidence:.2f} | key {self.key.name} | {tempo}"


NO_CHORD = Chord(None, "", 0.0, (), None)


class Listener:
    """Fed the player's notes on the engine thread; read by anyone through `snapshot`."""

    def __init__(self, settings: ListenSettings | None = None, tempo_bpm: float = 100.0) -> None:
        s = self.settings = settings or ListenSettings()
        self.prior_ns_per_beat = 60e9 / tempo_bpm
        self._split = s.split_pitch if s.zone == "left" else 128
        self._held = bytearray(KEYS)
        self._held_keys: list[int] = []
        self._held_since = [0] * KEYS
        self._zone_count = [0] * PITCH_CLASSES
        self._released_ns = [-(1 << 62)] * PITCH_CLASSES
        self._release_ns = s.chord_release_ms * 1e6
        self._weights = np.zeros(PITCH_CLASSES)
        self._keys = KeyTracker(s.key_decay_s, s.key_margin)
        self._tracker = TempoTracker(tempo_bpm, s.tempo_memory_beats)
        self._clock = ClockTempo(tempo_bpm) if s.tempo_source == "midi_clock" else None
        self._pulses = -1
        self._decay_ns = s.dynamics_decay_s * 1e9
        self._activity = self._velocity_sum = 0.0
        self._last_note_ns = 0
        self._chord_dirty = self._key_dirty = False
        self._last_release_ns = self._checked_ns = self._group_ns = -(1 << 62)
        self._group_notes = 0  # notes in the onset group begun at _group_ns (a chord)
        self.notes_heard = self.notes_timed_out = 0
        self._chord, self._key = NO_CHORD, Key(None, "major", 0.0)
        self._tempo = Tempo(None, False, s.tempo_source, 0, self.prior_ns_per_beat)
        self._published = (0, self._chord, self._key, self._tempo, 0.0, 0.0, 0)
        match(self._weights)  # the compiled kernels load (or compile, once) now, not at the first note

    # --- the engine thread -------------------------------------------------------------------------
    def hear(self, message: NoteMessage, at_ns: int) -> None:
        """One of the player's notes: a few stores, nothing that waits."""
        pitch = message.pitch
        key = (message.channel & 15) * 128 + pitch
        if message.velocity > 0:
            if not self._held[key]:
                self._held[key] = 1
                self._held_keys.append(key)
                if pitch < self._split:
                    self._zone_count[pitch % 12] += 1
            self._held_since[key] = at_ns
            if at_ns - self._group_ns < CHORD_GAP_NS:
                if self._group_notes == 1:  # a chord struck: what was let go before it is no longer heard
                    self._forget_released(self._group_ns)
                self._group_notes += 1
            else:
                self._group_ns, self._group_notes = at_ns, 1
            self._keys.add(pitch % 12, at_ns)
            if self._clock is None:
                self._tracker.onset(at_ns)
            decay = math.exp((self._last_note_ns - at_ns) / self._decay_ns)
            self._activity = self._activity * decay + 1.0
            self._velocity_sum = self._velocity_sum * decay + message.velocity
            self._last_note_ns = at_ns
            self.notes_heard += 1
            self._chord_dirty = self._key_dirty = True
        elif self._held[key]:
            self._release(key, at_ns)

    def _release(self, key: int, at_ns: int) -> None:
        self._held[key] = 0
        self._held_keys.remove(key)
        pitch = key % 128
        if pitch < self._split:
            self._zone_count[pitch % 12] -= 1
            if not self._zone_count[pitch % 12]:
                self._released_ns[pitch % 12] = self._last_release_ns = at_ns
        self._chord_dirty = True

    def _forget_released(self, before_ns: int) -> None:
        released = self._released_ns
        for pc in range(PITCH_CLASSES):
            if released[pc] <= before_ns:
                released[pc] = -(1 << 62)

    def on_raw_midi(self, data: bytes, at_ns: int) -> None:
        """Raw MIDI from an input that accepts clock (its own thread): steers the tempo when told to."""
        if self._clock is not None:
            self._clock.feed(data, at_ns)

    def refresh(self, now_ns: int) -> None:
        """Once per engine tick: analyse what changed since the last one and publish it."""
        if self._held_keys and now_ns - self._checked_ns > 1_000_000_000:  # once a second is plenty
            self._checked_ns = now_ns
            for key in [k for k in self._held_keys if now_ns - self._held_since[k] > MAX_NOTE_NS]:
                self._release(key, now_ns)
                self.notes_timed_out += 1
        changed = False
        if self._clock is not None:
            if self._clock.pulses != self._pulses:
                self._pulses = self._clock.pulses
                bpm, locked, anchor_ns, ns_per_beat = self._clock.reading()
                self._tempo = Tempo(bpm, locked, "midi_clock", anchor_ns, ns_per_beat)
                changed = True
        elif self._tracker.pending:
            t = self._tracker
            t.update()
            self._tempo = Tempo(t.bpm, t.locked, "playing", t.anchor_ns, t.ns_per_beat)
            changed = True
        fading = now_ns - self._last_release_ns < FADE_SPAN * self._release_ns
        if self._chord_dirty or fading:
            self._chord_dirty = False
            changed |= self._listen_chord(now_ns)
        if self._key_dirty:
            self._key_dirty = False
            tonic, mode, confidence = self._keys.estimate()
            if (tonic, mode, confidence) != (self._key.tonic, self._key.mode, self._key.confidence):
                self._key = Key(tonic, mode, confidence)
                changed = True
        if changed or self._published[6] != self._last_note_ns:
            self._published = (now_ns, self._chord, self._key, self._tempo, self._activity, self._velocity_sum,
                               self._last_note_ns)

    def _listen_chord(self, now_ns: int) -> bool:
        weights, counts = self._weights, self._zone_count
        held = 0
        for pc in range(PITCH_CLASSES):
            weights[pc] = 1.0 if counts[pc] else 0.0
            held += counts[pc] > 0
        if held < 3 and self._release_ns > 0:
            for pc in range(PITCH_CLASSES):
                age_ns = now_ns - self._released_ns[pc]
                if not counts[pc] and age_ns < FADE_SPAN * self._release_ns:
                    weights[pc] = math.exp(-age_ns / self._release_ns)
        zone = [k % 128 for k in self._held_keys if k % 128 < self._split]
        found = match(weights, min(zone) % 12 if zone else None)
        if found is None:
            return False
        root, quality, confidence = found
        confidence = round(confidence, 2)
        old = self._chord
        if (root, quality, confidence) == (old.root, old.quality, old.confidence):
            return False
        sounding = tuple(pc for pc in range(PITCH_CLASSES) if weights[pc] >= 0.05)
        self._chord = Chord(root, quality, confidence, sounding, min(zone) % 12 if zone else None)
        return True

    # --- any thread ------------------------------------------------------------------------------
    def snapshot(self, now_ns: int | None = None) -> ListenState:
        """What the listener hears now (default: at its last refresh): an immutable copy."""
        at_ns, chord, key, tempo, activity, velocity_sum, last_note_ns = self._published
        now = at_ns if now_ns is None else now_ns
        decay = math.exp(-max(0, now - last_note_ns) / self._decay_ns)
        ns_per_beat = tempo.ns_per_beat if tempo.locked else self.prior_ns_per_beat
        density = activity * decay / (self._decay_ns / ns_per_beat)
        dynamics = velocity_sum / activity if activity else 0.0
        return ListenState(now, chord, key, tempo, tempo.phase(now), round(density, 3), round(dynamics, 1))

    def locked_ns_per_beat(self) -> float | None:
        """The player's beat in ns while the tempo is locked, else None (for modes that follow it)."""
        tempo = self._published[3]
        return tempo.ns_per_beat if tempo.locked else None


def warm_up(settings: ListenSettings) -> None:
    """A throwaway listener hears a few onsets: its tempo kernels load now (17 ms), not under a mode's 4th note."""
    scratch = Listener(settings)
    for beat in range(8):
        at_ns = beat * 250_000_000
        scratch.hear(NoteMessage(60 + 2 * (beat % 4), 90), at_ns)
        scratch.refresh(at_ns)
        scratch.hear(NoteMessage(60 + 2 * (beat % 4), 0), at_ns + 200_000_000)
