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
    """Which (channel, pitch) an output has switched on and not yet off, counting re-strikes.

    A key struck again before its note-off is two sounding notes to a synth that pairs note-ons with
    note-offs: the first note-off must not make us forget the second, or a cut-in or a stop sends it no
    note-off and a synth that ignores CC123 keeps it sounding.
    """

    def __init__(self) -> None:
        self._count: dict[tuple[int, int], int] = {}  # (channel, pitch) -> note-ons not yet ended
        self.channels_used: set[int] = set()

    @property
    def held(self) -> set[tuple[int, int]]:
        return set(self._count)

    def __len__(self) -> int:
        return len(self._count)

    def track(self, message: NoteMessage) -> None:
        key = (message.channel, message.pitch)
        count = self._count.get(key, 0)
        if message.is_on:
            self._count[key] = count + 1
            self.channels_used.add(message.channel)
        elif count > 1:
            self._count[key] = count - 1
        elif count:
            del self._count[key]

    def releases(self) -> list[NoteMessage]:
        """A note-off for every note-on still sounding (two for a key struck twice), and forget them."""
        offs = [NoteMessage(pitch, 0, channel) for (channel, pitch), count in sorted(self._count.items())
                for _ in range(count)]
        self._count.clear()
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
