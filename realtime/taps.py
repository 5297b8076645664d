"""Taps on a running engine for the cockpit (view, recorder): what it heard, what it sent, what it plans.

A tap costs the hot path a few stores into preallocated arrays or an append to a deque; it never
takes a lock, never logs and never blocks. Readers (the view's timer, the recorder's flush) copy
what they need outside the loop. A torn read shows at most one entry being written: harmless for
a picture, and the recorder reads deques, which hand over whole entries.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from .events import NoteMessage

RING_NOTES = 1024  # notes each ring keeps: minutes of playing, a few KB


class NoteRing:
    """A fixed ring of (time ns, pitch, velocity, channel), written by one thread, read by any."""

    def __init__(self, size: int = RING_NOTES) -> None:
        self.at_ns = np.zeros(size, np.int64)
        self.pitch = np.zeros(size, np.int16)
        self.velocity = np.zeros(size, np.int16)
        self.channel = np.zeros(size, np.int16)
        self.count = 0  # notes ever written; the newest is at (count - 1) % size

    def add(self, at_ns: int, pitch: int, velocity: int, channel: int) -> None:
        i = self.count % len(self.at_ns)
        self.at_ns[i], self.pitch[i], self.velocity[i], self.channel[i] = at_ns, pitch, velocity, channel
        self.count += 1

    def snapshot(self) -> list[tuple[int, int, int, int]]:
        """Oldest first, copied: (time ns, pitch, velocity, channel)."""
        count, size = self.count, len(self.at_ns)
        n = min(count, size)
        order = (np.arange(count - n, count) % size) if n else np.zeros(0, np.int64)
        at, pitch, vel, ch = (a[order].tolist() for a in (self.at_ns, self.pitch, self.velocity, self.channel))
        return list(zip(at, pitch, vel, ch))


class TappedInbox(deque):
    """The engine's inbox, telling listeners what the loop takes out (on the engine thread)."""

    def __init__(self, listeners: list[Callable[[object, int], None]] | None = None) -> None:
        super().__init__()
        self.listeners = listeners if listeners is not None else []

    def popleft(self):
        item = super().popleft()
        for listener in self.listeners:
            listener(*item)
        return item


def tap_inbox(owner, attribute: str = "_inbox") -> TappedInbox:
    """Give the engine (or a mode: "inbox") a tapped inbox, once; messages already waiting are kept."""
    if not isinstance(getattr(owner, attribute), TappedInbox):
        inbox = TappedInbox()
        inbox.extend(getattr(owner, attribute))
        setattr(owner, attribute, inbox)
    return getattr(owner, attribute)


def tap_sent(scheduler, listener: Callable[[NoteMessage, int, int], None]) -> None:
    """Also call `listener(message, deadline_ns, sent_ns)` for each message the scheduler sends."""
    previous = scheduler.on_sent

    def both(message: NoteMessage, deadline_ns: int, sent_ns: int) -> None:
        if previous is not None:
            previous(message, deadline_ns, sent_ns)
        listener(message, deadline_ns, sent_ns)

    scheduler.on_sent = both


def tap_tempo(tempo, listener: Callable[[int, float], None]) -> None:
    """Also call `listener(at_ns, tempo_bpm)` whenever a TempoClock's tempo changes (on its caller's thread)."""
    set_anchor = tempo.set_anchor

    def told(at_ns: int, beat: float, tempo_bpm: float | None = None) -> None:
        before = tempo.tempo_bpm
        set_anchor(at_ns, beat, tempo_bpm)
        if tempo.tempo_bpm != before:
            listener(at_ns, tempo.tempo_bpm)

    tempo.set_anchor = told  # set_tempo and restart go through set_anchor too


class Taps:
    """The player's notes (as the engine took them) and the engine's notes (as sent), in two rings."""

    def __init__(self, live) -> None:
        self.live = live
        self.player, self.engine = NoteRing(), NoteRing()
        tap_inbox(live.engine).listeners.append(self._heard)
        tap_sent(live.scheduler, self._sent)

    def _heard(self, message, at_ns: int) -> None:
        if isinstance(message, NoteMessage):
            self.player.add(at_ns, message.pitch, message.velocity, message.channel)

    def _sent(self, message: NoteMessage, deadline_ns: int, sent_ns: int) -> None:
        if isinstance(message, NoteMessage):
            self.engine.add(sent_ns, message.pitch, message.velocity, message.channel)

    def planned(self) -> list[tuple[int, NoteMessage]]:
        """What the scheduler holds with future deadlines: the plan ahead, (deadline ns, message)."""
        return self.live.scheduler.planned()
