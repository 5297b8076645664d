"""MIDI backend choice: which port class a backend name means, and which rtmidi API, so app code never
imports a backend itself (rtmidi and JACK-Client are imported only when a port of theirs opens).

- `jack`: JACK-Client (realtime/io/jackmidi.py): every event at its frame, inputs stamped by frame.
- `jack-rtmidi`: python-rtmidi on JACK (events at the start of the next period), kept for comparison.
- `alsa`, `coremidi`, `winmm`: python-rtmidi (realtime/io/midi.py).
With no backend named, the platform's own is tried first, then JACK; one error names every failure.
"""

from __future__ import annotations

import sys

from ..clock import Clock
from ..errors import PortError
from .ports import MIDI_BACKENDS, PLATFORM_BACKENDS

RTMIDI_APIS = {"alsa": "API_LINUX_ALSA", "coremidi": "API_MACOSX_CORE", "jack": "API_UNIX_JACK",
               "winmm": "API_WINDOWS_MM"}  # our name -> python-rtmidi's constant


def rtmidi_api(backend: str) -> int:
    """python-rtmidi's API number for a backend, or a PortError saying which this build has."""
    import rtmidi

    if backend not in RTMIDI_APIS:
        raise PortError(f"unknown MIDI backend {backend!r}: choose one of {', '.join(RTMIDI_APIS)}")
    api = getattr(rtmidi, RTMIDI_APIS[backend])
    if api not in rtmidi.get_compiled_api():
        raise PortError(f"MIDI backend {backend} is not built into python-rtmidi here (it has: "
                        f"{', '.join(compiled_backends())})")
    return api


def compiled_backends() -> list[str]:
    """The backends this build of python-rtmidi has (on Linux wheels: alsa and jack)."""
    import rtmidi

    compiled = rtmidi.get_compiled_api()
    return [name for name, constant in RTMIDI_APIS.items() if getattr(rtmidi, constant) in compiled]


def create_rtmidi(cls: type, backend: str | None, client_name: str) -> tuple[object, str]:
    """An rtmidi MidiIn or MidiOut on the backend asked for, else on the first of this platform's that
    works; one error naming them all if none does."""
    import rtmidi

    from .jackwatch import jack_watch

    if backend:
        rtmidi_api(backend)
    problems = []
    for name in (backend,) if backend else PLATFORM_BACKENDS.get(sys.platform, ("alsa", "jack")):
        try:
            if name == "jack" and not jack_watch().poll():
                raise PortError("no JACK server is running (start one, e.g. `jackd -d dummy`, or use qjackctl)")
            return cls(rtmidi_api(name), client_name), name
        except PortError as err:
            problems.append(f"{name}: {err}")
        except (SystemError, rtmidi.RtMidiError) as err:
            hint = " (no /dev/snd/seq: no sound card or snd-seq module)" if name == "alsa" else ""
            problems.append(f"{name}: {err}{hint}")
    raise PortError("no MIDI backend could start: " + "; ".join(problems))


def list_ports(backend: str) -> dict[str, list[str]]:
    """{"inputs": ports we can listen to, "outputs": ports we can play to} on one rtmidi backend."""
    import rtmidi

    midi_in, _ = create_rtmidi(rtmidi.MidiIn, backend, "realtime-list")
    midi_out, _ = create_rtmidi(rtmidi.MidiOut, backend, "realtime-list")
    try:
        return {"inputs": midi_in.get_ports(), "outputs": midi_out.get_ports()}
    finally:
        midi_in.delete()
        midi_out.delete()


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
