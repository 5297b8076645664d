"""Which MIDI port class a backend name means, so app code never imports a backend itself.

- `jack`: JACK-Client (realtime/io/jackmidi.py): every event at its frame, inputs stamped by frame.
- `jack-rtmidi`: python-rtmidi on JACK (events at the start of the next period), kept for comparison.
- `alsa`, `coremidi`, `winmm`: python-rtmidi (realtime/io/midi.py).
With no backend named, the platform's own is tried first, then JACK; one error names every failure.
"""

from __future__ import annotations

import sys

from ..clock import Clock
from ..errors import PortError
from .midiparse import MIDI_BACKENDS, PLATFORM_BACKENDS


def _candidates(backend: str | None) -> tuple[str, ...]:
    if backend is None:
        return PLATFORM_BACKENDS.get(sys.platform, ("alsa", "jack"))
    if backend not in MIDI_BACKENDS:
        raise PortError(f"unknown MIDI backend {backend!r}: choose one of {', '.join(MIDI_BACKENDS)}")
    return (backend,)


def _first_that_opens(backend: str | None, open_one) -> object:
    problems = []
    for name in _candidates(backend):
        try:
            return open_one(name)
        except PortError as err:
            if backend is not None:
                raise
            problems.append(f"{name}: {err}")
    raise PortError("no MIDI backend could start: " + "; ".join(problems))


def _jack_client_port(cls_name: str):
    """JACK-Client's port class, or a PortError saying why it cannot load."""
    from . import jackmidi

    reason = jackmidi.available()
    if reason:
        raise PortError(reason)
    return getattr(jackmidi, cls_name)


def _rtmidi_backend(name: str) -> str:
    return "jack" if name == "jack-rtmidi" else name  # realtime.io.midi's name for rtmidi on JACK


def open_input(clock: Clock, port: str | None, backend: str | None, client_name: str = "realtime",
               accept_clock: bool = False):
    """A MIDI input on the backend named (or the first that works), by port name or virtual."""
    def open_one(name: str):
        if name == "jack":
            return _jack_client_port("JackMidiInput")(clock, port, client_name=client_name, accept_clock=accept_clock)
        from .midi import MidiInput

        return MidiInput(clock, port, _rtmidi_backend(name), client_name=client_name, accept_clock=accept_clock)

    return _first_that_opens(backend, open_one)


def open_output(clock: Clock, port: str | None, backend: str | None, client_name: str = "realtime",
                latency_ms: float = 0.0):
    """A MIDI output on the backend named (or the first that works). `latency_ms` plays that much
    early on a backend that keeps time (JACK); rtmidi backends cannot and say so."""
    def open_one(name: str):
        if name == "jack":
            return _jack_client_port("JackMidiOutput")(clock, port, client_name=client_name, latency_ms=latency_ms)
        from .midi import MidiOutput

        if latency_ms:
            raise PortError(f"[midi] latency_ms needs a backend that keeps time (jack), not {name}")
        return MidiOutput(port, _rtmidi_backend(name), client_name=client_name)

    return _first_that_opens(backend, open_one)
