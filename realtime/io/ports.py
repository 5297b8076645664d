"""Port protocols and in-memory ports: the engine sees only these, never a backend.

An input hands each message, stamped with the clock's time of arrival, to a callback the engine
registered; it never calls into the engine otherwise. An output sends at once and remembers
which notes it holds, so that closing it always leaves silence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..clock import Clock
from ..events import Event, NoteMessage

Listener = Callable[[Event, int], None]  # (event, arrival time ns); called on the port's own thread


class Input(Protocol):
    name: str

    def set_listener(self, listener: Listener | None) -> None: ...

    def close(self) -> None: ...


class Output(Protocol):
    name: str

    def send(self, message: NoteMessage) -> None: ...

    def all_notes_off(self) -> None: ...

    def close(self) -> None: ...


class HeldNotes:
    """Which (channel, pitch) an output has switched on and not yet off."""

    def __init__(self) -> None:
        self.held: set[tuple[int, int]] = set()
        self.channels_used: set[int] = set()

    def track(self, message: NoteMessage) -> None:
        key = (message.channel, message.pitch)
        if message.is_on:
            self.held.add(key)
            self.channels_used.add(message.channel)
        else:
            self.held.discard(key)

    def releases(self) -> list[NoteMessage]:
        """Note-offs for everything held, and forget it."""
        offs = [NoteMessage(pitch, 0, channel) for channel, pitch in sorted(self.held)]
        self.held.clear()
        return offs


class MemoryInput:
    """An input fed by code (the demo's player, tests): `play` delivers a message now."""

    def __init__(self, clock: Clock, name: str = "memory-in") -> None:
        self.clock, self.name = clock, name
        self._listener: Listener | None = None

    def set_listener(self, listener: Listener | None) -> None:
        self._listener = listener

    def play(self, pitch: int, velocity: int, channel: int = 0) -> None:
        if self._listener is not None:
            self._listener(NoteMessage(pitch, velocity, channel), self.clock.now_ns())

    def close(self) -> None:
        self._listener = None


class MemoryOutput:
    """An output that records (time ns, message) as sent, for tests and offline rendering."""

    def __init__(self, clock: Clock, name: str = "memory-out") -> None:
        self.clock, self.name = clock, name
        self.sent: list[tuple[int, NoteMessage]] = []
        self.notes = HeldNotes()
        self.closed = False

    def send(self, message: NoteMessage) -> None:
        self.notes.track(message)
        self.sent.append((self.clock.now_ns(), message))

    def all_notes_off(self) -> None:
        for message in self.notes.releases():
            self.sent.append((self.clock.now_ns(), message))

    def close(self) -> None:
        if not self.closed:
            self.all_notes_off()
            self.closed = True

    @property
    def held(self) -> set[tuple[int, int]]:
        return set(self.notes.held)


class FanOut:
    """One output that sends to several (MIDI, OSC, a synth): the scheduler sees one port."""

    def __init__(self, outputs: list[Output]) -> None:
        self.outputs = outputs
        self.name = " + ".join(o.name for o in outputs) or "nowhere"

    def send(self, message: NoteMessage) -> None:
        for output in self.outputs:
            output.send(message)

    def all_notes_off(self) -> None:
        for output in self.outputs:
            output.all_notes_off()

    def close(self) -> None:
        for output in self.outputs:
            output.close()
