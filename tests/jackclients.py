"""Foreign JACK MIDI clients for tests and benchmarks: a synth that counts the notes it holds, and a
keyboard that plays into the engine. Plain python-rtmidi, so they see the engine as any other
program would. Also `realtime run` started as a user starts it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import rtmidi

from realtime.io.midi import resolve_port

PHRASE = (67, 71, 74, 72, 71, 69, 67)
ROOT = Path(__file__).resolve().parents[1]


def wait_for(predicate, timeout_s: float = 5.0, step_s: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())


class Receiver:
    """A JACK MIDI receiver that keeps what it hears, stamped, and which notes it holds (a synth
    honouring note-offs, and CC120/CC123 releasing a channel)."""

    def __init__(self, name: str = "synth", virtual: bool = False, port_name: str = "in") -> None:
        self.messages: list[tuple[float, list[int]]] = []
        self._lock = threading.Lock()
        self.port_name = port_name
        self.port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name)
        self.port.ignore_types(sysex=False, timing=False, active_sense=False)
        self.port.set_callback(self._heard)
        if virtual:
            self.port.open_virtual_port("midi in")

    def _heard(self, event, _data=None) -> None:
        with self._lock:
            self.messages.append((time.monotonic(), event[0]))

    def listen_to(self, port: str) -> None:
        """Connect to a port by its exact name, else the one whose name contains `port`."""
        names = self.port.get_ports()
        self.port.open_port(names.index(resolve_port(names, port, "output", "jack")), self.port_name)

    def heard(self) -> list[list[int]]:
        with self._lock:
            return [m for _, m in self.messages]

    def held(self) -> set[tuple[int, int]]:
        held: set[tuple[int, int]] = set()
        for m in self.heard():
            kind, channel = m[0] & 0xF0, m[0] & 0x0F
            if kind == 0x90 and m[2] > 0:
                held.add((channel, m[1]))
            elif kind in (0x80, 0x90):
                held.discard((channel, m[1]))
            elif kind == 0xB0 and m[1] in (120, 123):
                held = {key for key in held if key[0] != channel}
        return held

    def note_ons(self, after: float = 0.0) -> list[float]:
        """When each note-on arrived (time.monotonic), from `after` on."""
        with self._lock:
            return [t for t, m in self.messages if m[0] & 0xF0 == 0x90 and m[2] > 0 and t >= after]

    def close(self) -> None:
        self.port.close_port()
        self.port.delete()


class Keyboard:
    """A JACK MIDI sender playing into the engine's input; sends anything, hostile bytes included."""

    def __init__(self, name: str = "keys", port_name: str = "out") -> None:
        self.port_name = port_name
        self.port = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name)

    def play_into(self, port: str) -> None:
        """Connect to a port by its exact name, else the one whose name contains `port`."""
        names = self.port.get_ports()
        self.port.open_port(names.index(resolve_port(names, port, "input", "jack")), self.port_name)

    def send(self, data) -> None:
        self.port.send_message(data)

    def note(self, pitch: int, velocity: int, channel: int = 0) -> None:
        self.send([(0x90 if velocity else 0x80) | channel, pitch, velocity])

    def burst(self, messages, per_period: int = 32) -> None:
        """As fast as JACK carries them: rtmidi's JACK path garbles a burst of more than ~100 messages
        within one period (measured: later events repeat an earlier one), so a flood goes out in
        slices a period apart; still hundreds of times what a player sends."""
        for start in range(0, len(messages), per_period):
            for data in messages[start:start + per_period]:
                self.send(data)
            time.sleep(0.002)

    def phrase(self, pitches=PHRASE, gap_s: float = 0.1) -> None:
        for pitch in pitches:
            self.note(pitch, 90)
            time.sleep(gap_s)
            self.note(pitch, 0)

    def close(self) -> None:
        self.port.close_port()
        self.port.delete()


# `realtime run` on JACK MIDI with virtual ports, answering 300 ms after a phrase; {output} may name a port
RUN_PATCH = """
[engine]
tempo_bpm = 120
[continuation]
phrase_end_ms = 300
answer_notes = 40
answer_beats = 40
[midi]
backend = "jack"
{output}
[osc]
enabled = false
"""


def run_realtime(patch: Path, *flags: str) -> subprocess.Popen:
    """`realtime run PATCH` as a user runs it, returned once it says it is running."""
    proc = subprocess.Popen([sys.executable, "-m", "realtime.cli", "run", str(patch), *flags], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "running" not in line:
        proc.kill()
        raise RuntimeError(f"realtime run did not start: {line} {proc.communicate()[1][-400:]}")
    return proc


def start_realtime(folder: Path, *flags: str, output: str = "") -> tuple[subprocess.Popen, Path]:
    """`realtime run` on RUN_PATCH (written to `folder`), and the patch's path for reloading."""
    patch = folder / "jack.toml"
    patch.write_text(RUN_PATCH.format(output=f'output = "{output}"' if output else ""))
    return run_realtime(patch, *flags), patch
