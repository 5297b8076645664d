"""Harmonize: every note the player plays gets harmony voices at once, released with that note.

The engine hands each player note to `on_message`, then refreshes the listener, then calls `tick`,
all in the tick the note woke (the loop wakes on notes). Note-ons wait in `_pending` for that tick,
so the chord heard includes the note just struck; a note-off first voices whatever still waits.
Each note's voices come from the chord heard (realtime/listen/) when it is confident and two of its
tones sound or just did, else from the key's triad on the melody's degree: the patch's `[model] key`,
else the listener's key, else (before the listener names one) the major key on the first note
played. realtime/engine/voicing.py leads the voices; they go out with the deadline of now.

Ownership: each player note (channel, pitch) owns the voices chosen for it, a re-struck key owns one
set per strike (its note-offs end them oldest first), and a harmony pitch that two notes share is
counted: its note-on goes out when the first takes it, its note-off when the last lets go, so a
release never cuts a voice another note still holds. Stop, an error and a note held past
`max_note_ms` (its note-off was lost) end voices the same explicit way.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ..clock import Clock
from ..events import Event, NoteMessage
from ..listen import Listener, ListenState
from ..listen.listener import FADE_SPAN
from ..listen.listener import warm_up as warm_listener
from ..model.sampling import SCALES, key_pitch_classes
from ..scheduler import Scheduler
from ..settings import EngineSettings
from ..stagesettings import HarmonizeSettings
from .status import Figures, output_fields
from .voicing import chord_tones, choose_voices, key_triads, scale_of

TIMINGS = 4096  # a ring of (player's note -> harmony handed over) times, for the status line
NEVER = -(1 << 62)


class Harmonize:
    """Harmony voices on their own channel, following the player note for note."""

    def __init__(self, settings: HarmonizeSettings, scheduler: Scheduler, clock: Clock, listener: Listener | None,
                 key: str | None = None, melody_from: int = 0, chord_memory_ms: float = 1000.0) -> None:
        self.settings, self.scheduler, self.clock, self.listener = settings, scheduler, clock, listener
        self.key_scale = tuple(sorted(key_pitch_classes(key))) if key else None  # the patch's key wins
        self.melody_from = melody_from  # with [listen] zone = "left", the notes below make the chord only
        self.chord_memory_ns = int(chord_memory_ms * 1e6)
        self.above = settings.placement == "above"
        self.last_error: str | None = None
        self._pending: list[tuple[tuple[int, int], int, int]] = []  # (key, velocity, heard_ns) to voice this tick
        self._owners: dict[tuple[int, int], deque[tuple[int, tuple[int, ...]]]] = {}  # key -> (onset, voices)
        self._count = [0] * 128  # player notes holding each harmony pitch
        self._previous: tuple[int, ...] = ()  # the last voicing: where the voices move from
        self._first_pitch_class: int | None = None
        self._player: set[tuple[int, int]] = set()  # the player's keys down now
        self._released_ns = [NEVER] * 12  # when each pitch class last stopped sounding under the player
        self._last_deadline_ns = NEVER
        self._next_check_ns = 0
        self.harmonized = self.unvoiced = self.timed_out = self.errors = 0
        self.voiced_ns = np.zeros(TIMINGS, dtype=np.int64)  # the player's note -> its voices handed over

    # --- hearing ---------------------------------------------------------------------------------
    def on_message(self, message: Event, at_ns: int) -> None:
        if not isinstance(message, NoteMessage):
            return
        key = (message.channel, message.pitch)
        if message.is_on:
            self._player.add(key)
            if message.pitch >= self.melody_from:  # timed from its stamp, or from now if stamped ahead (a frame)
                self._pending.append((key, message.velocity, min(at_ns, self.clock.now_ns())))
            return
        if key in self._player:
            self._player.discard(key)
            if not any(pitch % 12 == message.pitch % 12 for _, pitch in self._player):
                self._released_ns[message.pitch % 12] = at_ns
        if self._pending:  # a note-on still waiting (struck and let go within one tick) is voiced first
            self._guarded(self._voice_pending)
        owners = self._owners.get(key)
        if owners:
            self._release(owners.popleft()[1])
            if not owners:
                del self._owners[key]

    def tick(self, now_ns: int) -> None:
        if self._pending:
            self._guarded(self._voice_pending)
        if self._owners and now_ns >= self._next_check_ns:
            self._next_check_ns = now_ns + 1_000_000_000  # once a second is plenty for a 30 s limit
            self._guarded(lambda: self._end_overlong(now_ns))

    def next_deadline_ns(self) -> int | None:
        return None  # nothing planned ahead: every voice answers a note as it comes

    # --- deciding ----------------------------------------------------------------------------------
    def _voice_pending(self) -> None:
        now = self.clock.now_ns()
        state = self.listener.snapshot(now) if self.listener is not None else None
        s = self.settings
        pending, self._pending = self._pending, []
        for key, velocity, heard_ns in pending:
            melody = key[1]
            if self._first_pitch_class is None:
                self._first_pitch_class = melody % 12
            voices = choose_voices(melody, self._tone_sets(melody, state, now), self._previous, s.voices,
                                   self.above, s.lowest, s.highest)
            if len(voices) < s.voices:
                self.unvoiced += s.voices - len(voices)
            if voices:
                self._previous = voices
            self._sound(voices, max(1, min(127, round(velocity * s.velocity_scale))))
            self._owners.setdefault(key, deque()).append((heard_ns, voices))
            self.voiced_ns[self.harmonized % TIMINGS] = self.clock.now_ns() - heard_ns
            self.harmonized += 1

    def _tone_sets(self, melody: int, state: ListenState | None, now_ns: int) -> list[tuple[int, ...]]:
        """The chord heard, if it is sure and sounding; else the key's triad on the melody's degree."""
        if state is not None:
            chord = state.chord
            if chord.root is not None and chord.confidence >= self.settings.chord_confidence:
                tones = chord_tones(chord.root, chord.quality)
                if sum(self._sounding(pc, now_ns) for pc in set(tones)) >= 2:
                    return [tones]
        return key_triads(melody % 12, self._scale(state))

    def _sounding(self, pitch_class: int, now_ns: int) -> bool:
        if now_ns - self._released_ns[pitch_class] <= self.chord_memory_ns:
            return True
        return any(pitch % 12 == pitch_class for _, pitch in self._player)

    def _scale(self, state: ListenState | None) -> tuple[int, ...]:
        if self.key_scale is not None:
            return self.key_scale
        if state is not None and state.key.tonic is not None:
            return scale_of(state.key.tonic, SCALES[state.key.mode])
        return scale_of(self._first_pitch_class or 0, SCALES["major"])

    # --- speaking ----------------------------------------------------------------------------------
    def _deadline(self) -> int:
        """Now, never before a message already pushed: equal deadlines go out in push order."""
        self._last_deadline_ns = max(self.clock.now_ns(), self._last_deadline_ns)
        return self._last_deadline_ns

    def _sound(self, voices: tuple[int, ...], velocity: int) -> None:
        channel, deadline = self.settings.channel, self._deadline()
        for pitch in voices:
            if not self._count[pitch]:
                self.scheduler.push(NoteMessage(pitch, velocity, channel), deadline)
            self._count[pitch] += 1

    def _release(self, voices: tuple[int, ...]) -> None:
        channel, deadline = self.settings.channel, self._deadline()
        for pitch in voices:
            if self._count[pitch] == 1:
                self.scheduler.push(NoteMessage(pitch, 0, channel), deadline)
            self._count[pitch] = max(0, self._count[pitch] - 1)

    def _end_overlong(self, now_ns: int) -> None:
        """A note-off that never comes (a sender killed mid-note) must not leave its harmony sounding."""
        limit_ns = int(self.settings.max_note_ms * 1e6)
        for key in list(self._owners):
            owners = self._owners[key]
            while owners and now_ns - owners[0][0] > limit_ns:
                self._release(owners.popleft()[1])
                self.timed_out += 1
            if not owners:
                del self._owners[key]

    def release_all(self) -> None:
        """End every voice with its note-off and forget what waited (stop, an error)."""
        self._pending = []
        self._owners.clear()
        channel, deadline = self.settings.channel, self._deadline()
        for pitch in range(128):
            if self._count[pitch]:
                self.scheduler.push(NoteMessage(pitch, 0, channel), deadline)
                self._count[pitch] = 0

    def _guarded(self, work) -> None:
        """A failing harmonizer ends its voices and says so once; the engine and the player go on."""
        try:
            work()
        except Exception as err:
            self.errors += 1
            self.release_all()
            if self.last_error is None:
                self.last_error = f"harmonize failed ({type(err).__name__}: {str(err)[:120]}); its voices were ended"

    def stop(self, now_ns: int) -> None:
        self.release_all()
        self.scheduler.dispatch_due(self._last_deadline_ns)  # sends them now unless an output thread does

    def apply_control(self, target: str, value: float) -> None:
        """No live controls yet: [[controls]] targets are the duet's."""

    # --- the session's side (realtime/session.py), outside the loop -------------------------------
    def warm_up(self) -> None:
        """A throwaway listener hears a few onsets: its tempo kernels load now (17 ms), not under the 4th note."""
        if self.listener is not None:
            warm_listener(self.listener.settings)
        choose_voices(72, key_triads(0, scale_of(0, SCALES["major"])), (67, 64), self.settings.voices, self.above,
                      self.settings.lowest, self.settings.highest)

    def begin(self, now_ns: int) -> None:
        """Nothing to start: the harmony waits for the player."""

    @property
    def voices_held(self) -> int:
        return sum(1 for count in self._count if count)

    def status_fields(self, figures: Figures, now_ns: int) -> list[str]:
        """In, out, notes harmonized, voices sounding, player note -> harmony handed over, jitter, misses."""
        parts = [f"in {figures.messages_in}", f"out {figures.sent}", f"harmonized {self.harmonized}",
                 f"voices {self.voices_held}"]
        n = min(self.harmonized, TIMINGS)
        if n:
            p50, p99 = np.percentile(self.voiced_ns[:n], [50, 99]) / 1e6
            parts.append(f"voiced in p50 {p50:.2f} ms p99 {p99:.2f} ms")
        return parts + output_fields(figures, [f"unvoiced {self.unvoiced}"] if self.unvoiced else [])

    def drops(self) -> int:
        return 0  # every note reaching the mode is heard (the engine's inbox counts its own drops)


def make_harmonize(settings: EngineSettings, clock: Clock, scheduler: Scheduler, listener: Listener | None) -> Harmonize:
    """The mode over a scheduler it is given (opens no port): a live switch may build several over one."""
    listen = settings.listen
    return Harmonize(settings.harmonize, scheduler, clock, listener, key=settings.model.key,
                     melody_from=listen.split_pitch if listen.zone == "left" else 0,
                     chord_memory_ms=FADE_SPAN * listen.chord_release_ms)
