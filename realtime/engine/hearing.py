"""The duet's ear: the player's notes, heard in onset order and fed to the model as each ends.

A mixin of `Continuation` (continuation.py), kept apart so each file stays readable: it owns the notes
sounding and finished, the phrase's velocities and rhythm, and the rhythm taps (engine/answershape.py),
and calls back `_rollback` and `_timed_feed` for a phrase that goes on or a note to feed.
"""

from __future__ import annotations

from ..events import Event, NoteMessage
from ..model.tokens import Token, duration_bucket, ioi_bucket, velocity_bucket


class Hearing:
    """What `Continuation` hears: on_message, the notes that outlive their note-off, feeding in order."""

    _fresh_phrase = False  # set when an answer is confirmed and fresh_phrases is on

    def on_message(self, message: Event, at_ns: int) -> None:
        if not isinstance(message, NoteMessage):
            return  # controls are mapped by the engine, not by this mode
        key = (message.channel, message.pitch)
        self._last_activity_ns = at_ns
        if self.tentative:  # the phrase goes on: take back the answer that was ready for its end
            self._rollback(at_ns)
        if message.is_on:
            if self.answering:
                self.interruptions += 1
                self._rollback(at_ns)
            if self.shape.is_tap(message):  # a rhythm tap keeps the floor but is no note of the phrase
                self.shape.tap(message, at_ns)
                return
            if key in self._sounding:  # a repeated note-on without note-off ends the first
                self._finish(key, at_ns)
            self._sounding[key] = (at_ns, message.velocity)
            self._phrase_velocities.append(message.velocity)
        elif key in self._sounding:
            self._finish(key, at_ns)
            self._feed_finished()
        # a note-off for a note we never heard is harmless: ignore it

    def _end_overlong_notes(self, now_ns: int) -> None:
        """A note-off that never comes (a sender killed mid-note, a lost packet) must not stop the duet."""
        limit_ns = int(self.settings.max_note_ms * 1e6)
        overlong = [key for key, (onset, _) in self._sounding.items() if now_ns - onset > limit_ns]
        for key in overlong:
            self._finish(key, self._sounding[key][0] + limit_ns)
            self.notes_timed_out += 1
            self._last_activity_ns = max(self._last_activity_ns or 0, now_ns)
        if overlong:
            self._feed_finished()

    def _finish(self, key: tuple[int, int], end_ns: int) -> None:
        onset, velocity = self._sounding.pop(key)
        self._finished.append((onset, end_ns, key[1], velocity))

    def _follow_tempo(self) -> None:
        """The player's beat, while the listener is locked on it, is the beat notes are heard and answered in."""
        if self.listener is not None and self.settings.follow_tempo:
            self.ns_per_beat = self.listener.locked_ns_per_beat() or self.ns_per_beat

    def _feed_finished(self) -> None:
        """Feed finished notes in onset order, up to the earliest note still sounding."""
        self._follow_tempo()
        while self._unheard:  # answer notes the model missed come first: they came first
            self._timed_feed(self._unheard.pop(0))
        earliest_sounding = min((on for on, _ in self._sounding.values()), default=None)
        self._finished.sort()
        while self._finished and (earliest_sounding is None or self._finished[0][0] < earliest_sounding):
            onset, end, pitch, velocity = self._finished.pop(0)
            ioi_ns = 0 if self._last_fed_onset_ns is None else onset - self._last_fed_onset_ns
            restart = self._fresh_phrase  # fresh_phrases: a new phrase is heard from the model's first note
            if restart:
                self._fresh_phrase = False
                self._last_fed_onset_ns, ioi_ns = None, 0
            token = Token(pitch, ioi_bucket(ioi_ns / self.ns_per_beat),
                          duration_bucket((end - onset) / self.ns_per_beat), velocity_bucket(velocity))
            self.follow.before_feed(token, onset, velocity, self.ns_per_beat, self.shape.next_mood(), restart)
            self._timed_feed(token)
            self._last_fed_onset_ns = onset
            self._heard_pitches.append(pitch)
            self._phrase_rhythm.append(token)
            self.memory.hear(pitch)
