"""Port protocols and in-memory ports (the engine sees only these, never a backend), and what every
MIDI backend shares: bytes -> events with counts, held keys, port-name matching, panic.

An input hands each message, stamped with the clock's time of arrival, to a callback the engine
registered; it never calls into the engine otherwise. An output sends at once and remembers
which notes it holds, so that closing it always leaves silence. The MIDI part is backend-free (no
rtmidi, no JACK): the rtmidi and JACK-Client ports, tests and tools share one definition of a
well-formed message and of a name that matches a port.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..clock import Clock
from ..errors import PortError
from ..events import ControlChange, Event, ModeRequest, NoteMessage

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

MIDI_BACKENDS = ("jack", "jack-rtmidi", "alsa", "coremidi", "winmm")  # what realtime/io/midibackend.py opens
PLATFORM_BACKENDS = {"linux": ("alsa", "jack"), "darwin": ("coremidi", "jack"), "win32": ("winmm",)}  # tried in order
PANIC_CONTROLS = (64, 120, 123, 121)  # sustain off, all sound off, all notes off, reset controllers
RawListener = Callable[[bytes, int], None]  # (message bytes, time ns): clock and transport


def resolve_port(names: list[str], wanted: str, kind: str, backend: str) -> str:
    """The port called `wanted`, else the one port whose name contains it (ignoring case)."""
    if wanted in names:
        return wanted
    matches = [name for name in names if wanted.lower() in name.lower()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise PortError(f"MIDI {kind} {wanted!r} matches several {backend} ports: "
                        + ", ".join(repr(m) for m in matches) + "; give more of the name")
    have = ", ".join(repr(n) for n in names) if names else "none"
    raise PortError(f"no MIDI {kind} port matching {wanted!r} on {backend} (ports: {have})")


class Supervised:
    """A port watched from outside the hot path: `check()` says what changed, and what it warned of."""

    _warnings: list[str]
    connected: bool
    kind: str

    def check(self) -> str | None:
        """Notice a vanished or returned device or JACK server; one line to show, or None."""
        message = self._check_connection()
        if self._warnings:
            message = "; ".join(filter(None, [message, *self._warnings]))
            self._warnings = []
        return message

    def _check_connection(self) -> str | None:
        raise NotImplementedError

    def _peer_vanished(self, peer: str, names: list[str]) -> str | None:
        """The connected device is no longer among `names`: note it, let the port react, say so."""
        if not self.connected or peer in names:
            return None
        self.connected = False
        self._vanished()
        return f"MIDI {self.kind} {peer} vanished; the engine keeps running and reconnects when it is back"


class MidiParser:
    """Turns raw input messages into NoteMessage / ControlChange for a listener, counting the rest.

    SysEx and active sensing are ignored; clock and transport bytes go to the raw listener when
    `accept_clock` is set. Malformed messages are counted and dropped, each kind said once through
    `warn`. Keys the player holds are tracked, so a vanished keyboard can be released in the engine.
    """

    def __init__(self, accept_clock: bool, warn: Callable[[str], None]) -> None:
        self.accept_clock = accept_clock
        self.listener: Listener | None = None
        self.raw_listener: RawListener | None = None
        self.counts = {"notes": 0, "controls": 0, "ignored": 0, "malformed": 0, "errors": 0}
        self._held = HeldNotes()
        self._warn = warn
        self._warned: set[str] = set()

    def dispatch(self, data: bytes | list[int], at_ns: int, port_name: str) -> None:
        try:
            self._dispatch(data, at_ns, port_name)
        except Exception as err:  # the backend's thread must survive a failing listener: count it
            self.count("errors", f"MIDI input {port_name}: listener failed: {type(err).__name__}: {err}")

    def _dispatch(self, data: bytes | list[int], at_ns: int, port_name: str) -> None:
        if not data:
            return
        status = data[0]
        if status >= 0xF0:
            if self.raw_listener is not None and self.accept_clock and status not in (0xF0, 0xFE):
                self.raw_listener(bytes(data), at_ns)
            else:
                self.counts["ignored"] += 1
            return
        kind = status & 0xF0
        if status < 0x80 or len(data) != (2 if kind in (0xC0, 0xD0) else 3) or any(b > 127 for b in data[1:]):
            self.count("malformed", f"MIDI input {port_name}: dropped malformed message {bytes(data).hex(' ')}")
            return
        if kind == 0x90 or kind == 0x80:
            message = NoteMessage(data[1], data[2] if kind == 0x90 else 0, status & 0x0F)
            self._held.track(message)
            self.counts["notes"] += 1
        elif kind == 0xB0:
            message = ControlChange(data[1], data[2], status & 0x0F)
            self.counts["controls"] += 1
        elif kind == 0xC0:  # program change: the patch's [engine] modes (else the model's styles), by number
            message = ModeRequest(program=data[1])
            self.counts["controls"] += 1
        else:
            self.counts["ignored"] += 1
            return
        listener = self.listener
        if listener is not None:
            listener(message, at_ns)

    def count(self, kind: str, line: str) -> None:
        self.counts[kind] += 1
        if kind not in self._warned:
            self._warned.add(kind)
            self._warn(line + " (further ones counted, not shown)")

    def release_held(self, now_ns: int) -> None:
        """The keyboard is gone: note-offs for the keys it held, so the engine never waits for them."""
        listener = self.listener
        for off in self._held.releases():
            if listener is not None:
                listener(off, now_ns)
