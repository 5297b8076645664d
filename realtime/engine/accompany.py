"""Accompany: a bass and chords that follow the chord the player plays, on the player's beat.

The engine hands each player note to `on_message`, refreshes the listener, then calls `tick`. The mode
plays two parts on channels of their own (never the player's): a bass and chords, each a pattern of
strikes per bar (realtime/engine/comping.py), on a beat grid that follows the player
(realtime/engine/beatgrid.py: the listener's tempo while it is locked, else the chords struck, else
the patch's tempo). It starts on the first chord the listener names with `chord_confidence`, and
rests when the player has held nothing and struck nothing for `stop_after_bars`. The chord is looked
at only after the player strikes (in the zone): at once when three notes came together, else
CHORD_GAP_NS after the first (a lone first note still blends with the chord let go before it), and
never on a release (letting go of a chord note by note passes through other chords).

Planning: the notes of a beat are chosen when its moment is `commit` away (the output's own lead,
`Scheduler.lead_ns`, plus `lookahead_ms`, never more than half a beat), from the chord and tempo of
that moment, and only then pushed with their deadlines; note-offs likewise. So nothing is ever
planned for an old chord that a change could not take back, except what is already pushed: when the
chord changes (a confident chord that differs), the beat now sounding (or the one already pushed) is
played again at once for the new chord, the bass on its root: a pitch both voicings share sounds on,
every other note of the old chord ends with a note-off (no earlier than its note-on; sooner than one
already pushed), the new ones strike (no earlier than the last message pushed for their key, so
every key's messages go out in order).

Velocity: the listener's dynamics (the player's recent mean velocity) times `velocity_scale`.
Stop, a mode switch, the player's all-notes-off (CC123) or all-sound-off (CC120) through `silence`,
a rest and an error all end every note with an explicit note-off; nothing is left sounding.
"""

from __future__ import annotations

import math

from ..clock import Clock
from ..events import Event, NoteMessage
from ..listen import Listener
from ..listen.chords import chord_name
from ..listen.listener import MAX_NOTE_NS, warm_up as warm_listener
from ..listen.tempo import CHORD_GAP_NS
from ..scheduler import Scheduler
from ..settings import EngineSettings
from ..stagesettings import AccompanySettings
from .beatgrid import BeatGrid
from .comping import (LEGATO, bass_pitch, bass_step, chord_classes, close_voicing, covering, pattern_events,
                      place_root)
from .status import Figures, output_fields

SETTLED_NOTES = 3  # a strike of this many notes is a chord at once; fewer are looked at CHORD_GAP_NS after the first
LATE_NS = 30_000_000  # a beat whose moment passed longer ago than this (a stall) is skipped, not played late
DEFAULT_VELOCITY = 80.0  # before the listener has heard a note's velocity
NEVER = -(1 << 62)


class Accompany:
    """Bass and chords on their own channels, on the player's beat, following the player's chord."""

    def __init__(self, settings: AccompanySettings, scheduler: Scheduler, clock: Clock, listener: Listener | None,
                 tempo_bpm: float = 100.0, beats_per_bar: int = 4, zone_below: int = 128) -> None:
        self.settings, self.scheduler, self.clock, self.listener = settings, scheduler, clock, listener
        self.grid = BeatGrid(60e9 / tempo_bpm, beats_per_bar)
        self.zone_below = zone_below  # with [listen] zone = "left", only notes below the split make chords
        self.bass_events = pattern_events(settings.bass_pattern, beats_per_bar)
        self.chord_events = pattern_events(settings.chord_pattern, beats_per_bar)
        self.last_error: str | None = None
        self.running = False
        self.chord: tuple[int, str] | None = None  # (root, quality) being played
        self._root: int | None = None  # the bass root's pitch: where the next one moves from
        self._voicing: tuple[int, ...] = ()  # the last chord voicing
        self._notes: dict[tuple[int, int], list[int]] = {}  # (channel, pitch) -> [on, off]: note-off not pushed yet
        self._free_at: dict[tuple[int, int], int] = {}  # (channel, pitch) -> deadline of its last message pushed
        self._offs: dict[tuple[int, int], int] = {}  # note-offs pushed for a moment still to come
        self._beat_ns: int | None = None  # the last beat played
        self._held: dict[tuple[int, int], int] = {}  # the player's keys down, and since when
        self._group_ns, self._group_notes = NEVER, 0  # the onset group (a chord being struck) in the zone
        self._strike_ns: int | None = None  # a chord struck, for the grid at the next tick
        self._fresh = False  # a note struck in the zone since the accompaniment last rested (or it was switched to)
        self._undecided = False  # a note struck in the zone whose chord the mode has not looked at yet
        self._active_ns = NEVER  # the player last struck or held a note
        self._velocity = DEFAULT_VELOCITY
        self._wake_ns: int | None = None
        self._now, self._lead = 0, 0  # the tick's moment, and the output's lead (Scheduler.lead_ns)
        self.played = self.changes = self.rests = self.errors = 0
        self.bar, self.beat_number, self._bar_ns = 0, 0, NEVER  # bars begun, the beat's place, the last bar line

    # --- hearing -----------------------------------------------------------------------------------
    def on_message(self, message: Event, at_ns: int) -> None:
        if not isinstance(message, NoteMessage):
            return
        key = (message.channel, message.pitch)
        if not message.is_on:
            self._held.pop(key, None)
            return
        self._held[key] = at_ns
        self._active_ns = max(self._active_ns, at_ns)
        if message.pitch >= self.zone_below:
            return
        self._fresh = self._undecided = True
        if at_ns - self._group_ns < CHORD_GAP_NS:
            self._group_notes += 1
            if self._group_notes == 2:  # a chord struck: a bar line, and a beat for the grid
                self._strike_ns = self._group_ns
        else:
            self._group_ns, self._group_notes = at_ns, 1

    def tick(self, now_ns: int) -> None:
        try:
            self._tick(now_ns)
        except Exception as err:  # a failing accompaniment ends its notes and says so once; the player goes on
            self.errors += 1
            self._halt(now_ns)
            if self.last_error is None:
                self.last_error = f"accompany failed ({type(err).__name__}: {str(err)[:120]}); its notes were ended"

    def _tick(self, now: int) -> None:
        self._now, self._lead = now, self.scheduler.lead_ns
        state = self.listener.snapshot(now) if self.listener is not None else None
        if state is not None:
            if state.tempo.locked:
                self.grid.follow(state.tempo.ns_per_beat, state.tempo.anchor_ns)
            else:
                self.grid.unfollow()
            if state.dynamics > 0:
                self._velocity = state.dynamics
        if self._strike_ns is not None:
            self.grid.strike(self._strike_ns)
            self._strike_ns = None
        if self._held and now - max(self._held.values()) < MAX_NOTE_NS:  # (a lost note-off: not for ever)
            self._active_ns = now
        if self._undecided and (self._group_notes >= SETTLED_NOTES or now - self._group_ns >= CHORD_GAP_NS):
            self._undecided = False
            chord = state.chord if state is not None else None
            if chord is not None and chord.root is not None and chord.confidence >= self.settings.chord_confidence:
                if (chord.root, chord.quality) != self.chord and (self.running or self._fresh):
                    self._change(now, (chord.root, chord.quality))
        if self.running and now - self._active_ns > self.settings.stop_after_bars * self.grid.bar_ns():
            self._rest(now)
        commit = self._commit_ns()
        self._push_offs(now, commit)  # first: a note-off due before a beat goes out before that beat's notes
        if self.running:
            self._play_beats(now, commit)
        self._push_offs(now, commit)
        self._wake_ns = self._next_wake(now, commit)

    # --- deciding --------------------------------------------------------------------------------------
    def _commit_ns(self) -> int:
        """How long before its moment a note is pushed: the output's lead and our margin, half a beat at most."""
        margin = self._lead + int(self.settings.lookahead_ms * 1e6)
        return min(margin, int(self.grid.ns_per_beat / 2))

    def _change(self, now: int, chord: tuple[int, str]) -> None:
        """A new chord (or the first): the beat sounding now, or the one already pushed, again for it."""
        if not self.running:
            self.running, self._fresh = True, False
            if not self.grid.started:
                self.grid.start(now)
        else:
            self.changes += 1
        self.chord = chord
        beat = math.floor(self.grid.beat_at(now + self._commit_ns()))
        at = self.grid.time_of(beat)
        self._beat(beat, max(now, at), restrike=True)

    def _next_beat(self, now: int) -> tuple[int, int]:
        """The grid's next beat after the last one played (more than half a beat after it), and its moment."""
        grid = self.grid
        after = self._beat_ns if self._beat_ns is not None else now - grid.ns_per_beat
        beat = math.floor(grid.beat_at(after + int(grid.ns_per_beat / 2))) + 1
        return beat, grid.time_of(beat)

    def _play_beats(self, now: int, commit: int) -> None:
        """Push every beat whose moment is within `commit`; skip those a stall let pass."""
        while True:
            beat, at = self._next_beat(now)
            if at - commit > now:
                return
            if at < now - LATE_NS:
                self._beat_ns = at
                continue
            self._beat(beat, at, restrike=False)

    def _beat(self, beat: int, at: int, restrike: bool) -> None:
        """Play one beat of the grid at `at`: what starts on it, or (restrike) everything sounding on it."""
        grid, s = self.grid, self.settings
        number = grid.number(beat)
        self._beat_ns, self.beat_number = grid.time_of(beat), number
        if number == 0 and self._beat_ns - self._bar_ns > grid.ns_per_beat / 2:
            self.bar, self._bar_ns = self.bar + 1, self._beat_ns
        root, quality = self.chord
        velocity = max(1, min(127, round(self._velocity * s.velocity_scale)))
        for channel, events in ((s.bass_channel, self.bass_events), (s.chord_channel, self.chord_events)):
            event = covering(events, number)
            if event is None or (not restrike and event[0] != number):
                if restrike:
                    self._sound(channel, (), at, at, velocity, keep=False)
                continue
            start = grid.time_of(beat - (number - event[0]))
            off = round(start + event[1] * grid.ns_per_beat * LEGATO)
            if channel == s.bass_channel:
                if event[0] == 0 or self._root is None or self._root % 12 != root:
                    self._root = place_root(root, self._root, s.bass_lowest, s.bass_highest)
                step = "root" if restrike else bass_step(s.bass_pattern, event[0])  # a new chord: its root
                pitches = () if self._root is None else (bass_pitch(self._root, quality, step, s.bass_highest),)
            else:
                voicing = close_voicing(chord_classes(root, quality, s.chord_notes), self._voicing,
                                        s.chord_lowest, s.chord_highest)
                self._voicing = voicing or self._voicing
                pitches = voicing
            self._sound(channel, pitches, at, off, velocity, keep=restrike)

    # --- speaking ----------------------------------------------------------------------------------
    def _sound(self, channel: int, pitches: tuple[int, ...], at: int, off: int, velocity: int, keep: bool) -> None:
        """One part's notes from `at` to `off`: with `keep`, a pitch already sounding sounds on to `off`;
        every other note of the part ends at `at` (no earlier than its note-on, no later than it was to)."""
        notes = self._notes
        for key in [key for key in notes if key[0] == channel]:
            if keep and key[1] in pitches:
                notes[key][1] = off
            else:
                self._end(key, min(at, notes[key][1]))
        for key in [key for key, t in self._offs.items() if key[0] == channel and t > at]:
            self._end_sooner(key, at)  # a note whose note-off is already on its way, for later
        for pitch in pitches:
            key = (channel, pitch)
            if key in notes:
                continue
            on = self._deadline(key, at)
            if off <= on:
                continue
            self.scheduler.push(NoteMessage(pitch, velocity, channel), on)
            self._free_at[key] = on
            notes[key] = [on, off]
            self.played += 1

    def _end(self, key: tuple[int, int], at: int) -> None:
        self._notes.pop(key)
        at = self._deadline(key, at)  # never before its note-on: that is the key's last message pushed
        self.scheduler.push(NoteMessage(key[1], 0, key[0]), at)
        self._free_at[key] = at
        if at > self._now:
            self._offs[key] = at

    def _end_sooner(self, key: tuple[int, int], at: int) -> None:
        """Another note-off, sooner than the one pushed: the key's last message is a note-off, so this is safe;
        the key's next note-on still waits for the later one."""
        del self._offs[key]
        self.scheduler.push(NoteMessage(key[1], 0, key[0]), self._now if at < self._now + self._lead else at)

    def _deadline(self, key: tuple[int, int], at: int) -> int:
        """When a message for this key goes out. While the key's last message is still on its way: after it,
        and no sooner than the output can write at its frame (the old chord's note struck on the predicted
        beat, ended a few ms later). Else a moment too close to be written at its frame (within the output's
        lead) is now, at once; later ones keep their moment."""
        last, soonest = self._free_at.get(key, NEVER), self._now + self._lead
        if last > self._now:
            return max(at, last, soonest)
        return self._now if at < soonest else at

    def _end_all(self, now: int) -> None:
        for key in list(self._notes):
            self._end(key, now)
        for key in [key for key, t in self._offs.items() if t > now]:
            self._end_sooner(key, now)

    def _push_offs(self, now: int, commit: int) -> None:
        for key in [key for key, t in self._offs.items() if t <= now]:
            del self._offs[key]
        for key, (on, off) in list(self._notes.items()):
            if off - commit <= now:
                self._end(key, off)

    def _next_wake(self, now: int, commit: int) -> int | None:
        wake = self._group_ns + CHORD_GAP_NS if self._undecided else None
        if self.running:
            beat_wake = self._next_beat(now)[1] - commit
            rest = self._active_ns + int(self.settings.stop_after_bars * self.grid.bar_ns()) + 1
            wake = min(beat_wake, rest) if wake is None else min(wake, beat_wake, rest)
        for _, off in self._notes.values():
            wake = off - commit if wake is None else min(wake, off - commit)
        return wake

    def _rest(self, now: int) -> None:
        """The player stopped: every note ends, and the next chord struck starts a bar of its own."""
        self._halt(now)
        self.rests += 1

    def _halt(self, now: int) -> None:
        self._end_all(now)
        self.running, self.chord, self._fresh = False, None, False
        self._beat_ns = None
        self.grid.stop()

    # --- the engine's side -------------------------------------------------------------------------
    def next_deadline_ns(self) -> int | None:
        return self._wake_ns

    def next_bar_ns(self, now_ns: int) -> int | None:
        """The next bar line of the accompaniment's own grid (a live switch waits for it); None while resting."""
        return self.grid.next_bar_ns(now_ns) if self.running else None

    def silence(self, now_ns: int) -> None:
        """The player's all-notes-off or all-sound-off: every note ends, and the accompaniment rests."""
        self._now = now_ns
        self._rest(now_ns)
        self.scheduler.dispatch_due(now_ns)

    def stop(self, now_ns: int) -> None:
        self._now = now_ns
        self._halt(now_ns)
        self._held.clear()  # switched away, the mode no longer hears the player's note-offs
        self._wake_ns = None
        self.scheduler.dispatch_due(now_ns)  # sends the note-offs now unless an output thread does

    def apply_control(self, target: str, value: float) -> None:
        """No live controls: [[controls]] targets are the duet's."""

    # --- the session's side (realtime/session.py), outside the loop -------------------------------
    def warm_up(self) -> None:
        """The listener's tempo kernels and the voicing code run once now, not under the first chord."""
        if self.listener is not None:
            warm_listener(self.listener.settings)
        s = self.settings
        close_voicing(chord_classes(0, "maj", s.chord_notes), (), s.chord_lowest, s.chord_highest)
        place_root(0, None, s.bass_lowest, s.bass_highest)

    def begin(self, now_ns: int) -> None:
        """Switched to (or started): the chord the listener already names is played at its next tick."""
        self._fresh = self._undecided = True
        self._active_ns, self._group_notes = now_ns, SETTLED_NOTES

    @property
    def notes_sounding(self) -> int:
        return len(self._notes)

    def status_fields(self, figures: Figures, now_ns: int) -> list[str]:
        """In, out, the chord played, the grid's tempo and where it comes from, bar:beat, notes played."""
        chord = chord_name(*self.chord) if self.chord is not None else "-"
        where = f"bar {self.bar}:{self.beat_number + 1}" if self.running else "resting"
        parts = [f"in {figures.messages_in}", f"out {figures.sent}", f"accompany {chord}",
                 f"{self.grid.bpm:.1f} BPM from {self.grid.source}", where, f"notes {self.played}"]
        return parts + output_fields(figures, [f"chord changes {self.changes}"])

    def drops(self) -> int:
        return 0  # every note reaching the mode is heard (the engine's inbox counts its own drops)


def make_accompany(settings: EngineSettings, clock: Clock, scheduler: Scheduler,
                   listener: Listener | None) -> Accompany:
    """The mode over a scheduler it is given (opens no port): a live switch may build several over one."""
    listen = settings.listen
    return Accompany(settings.accompany, scheduler, clock, listener, tempo_bpm=settings.tempo_bpm,
                     beats_per_bar=settings.beats_per_bar,
                     zone_below=listen.split_pitch if listen.zone == "left" else 128)
