"""Foreign JACK MIDI clients for tests and benchmarks: a synth that counts the notes it holds, and a
keyboard that plays into the engine. JACK-Client and python-rtmidi (output only), so they see the
engine as any other program would. Also `realtime run` started as a user starts it."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import rtmidi

from realtime import priority
from realtime.childproc import die_with_parent, engine_child
from realtime.io.midi import resolve_port

PHRASE = (67, 71, 74, 72, 71, 69, 67)
ROOT = Path(__file__).resolve().parents[1]
# what the test's own clients prove they lost in the running test ("Receiver synth: a period at frame N"):
# a JACK-Client callback here needs this process's interpreter lock and now and then misses a period under
# load, losing what came in then. conftest.py runs a failed JACK test once more when this is not empty
HARNESS_MISSED: list[str] = []


def wait_for(predicate, timeout_s: float = 5.0, step_s: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())


def stop_process(proc: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not gone after `timeout_s`."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def held_keys(messages: list[list[int]]) -> set[tuple[int, int]]:
    """(channel, pitch) still sounding at a synth that honours note-offs and CC120/CC123 per channel."""
    held: set[tuple[int, int]] = set()
    for m in messages:
        kind, channel = m[0] & 0xF0, m[0] & 0x0F
        if kind == 0x90 and m[2] > 0:
            held.add((channel, m[1]))
        elif kind in (0x80, 0x90):
            held.discard((channel, m[1]))
        elif kind == 0xB0 and m[1] in (120, 123):
            held = {key for key in held if key[0] != channel}
    return held


def wait_frames(client, frames: int, timeout_s: float = 2.0, step_s: float = 0.001) -> bool:
    """Until the JACK server (not the wall clock) has run `frames` frames after this moment, seen by `client`."""
    start = client.frame_time
    return wait_for(lambda: client.frame_time - start >= frames, timeout_s, step_s)


def wait_cycles(client, periods: int = 2) -> None:
    """Until the JACK server has run `periods` whole cycles after this moment, seen by `client`."""
    wait_frames(client, (periods + 1) * client.blocksize)


@contextlib.contextmanager
def closed_if_setup_fails(client):
    """A with-block around a jack.Client's set-up (ports, callbacks, activate): when that raises, the client
    is closed at once, not left to the garbage collector, which may run after its server has stopped."""
    try:
        yield client
    except BaseException:
        client.deactivate()
        client.close()
        raise


@contextlib.contextmanager
def timer_client(name: str):
    """An active JACK client of our own, only to read the server's frame time; closed after the block."""
    import jack

    timer = jack.Client(name, no_start_server=True)
    try:
        timer.activate()
        yield timer
    finally:
        timer.deactivate()
        timer.close()


class MidiDump:
    """JACK's own `jack_midi_dump -a` as a receiver in its own process: (absolute frame, bytes) of every
    event, read as it prints them. A C client, so nothing in the test's process (its GIL, its load)
    can make it miss a period: where a test must count every event, this is the receiver."""

    def __init__(self, name: str = "dump") -> None:
        self.name = name
        self.events: list[tuple[int, list[int]]] = []
        self.proc = subprocess.Popen(["stdbuf", "-oL", "jack_midi_dump", "-a", name], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, preexec_fn=die_with_parent)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not wait_for(lambda: f"{name}:input" in self._ports(), 5.0):
            self.close()
            raise AssertionError("jack_midi_dump did not register its port")

    @staticmethod
    def _ports() -> str:
        return subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout

    def _read(self) -> None:
        # at normal priority, preempted by a busy machine while it holds the GIL, this thread would stall
        # the JACK-Client callbacks of the test's own ports (the sender whose events it counts)
        priority.try_fifo("the jack_midi_dump reader", priority.MAIN_PRIORITY)
        for line in self.proc.stdout:
            match = re.match(r"^\s*(\d+):((?: [0-9a-f]{2})+)", line)
            if match:
                self.events.append((int(match.group(1)), list(bytes.fromhex(match.group(2)))))

    def listen_to(self, source: str) -> None:
        subprocess.run(["jack_connect", source, f"{self.name}:input"], check=True)
        time.sleep(0.05)  # a connection joins the server's graph from a later cycle

    def heard(self) -> list[list[int]]:
        return [m for _, m in list(self.events)]

    def held(self) -> set[tuple[int, int]]:
        return held_keys(self.heard())

    def close(self) -> list[tuple[int, list[int]]]:
        """Stop it; every event it printed."""
        stop_process(self.proc)
        self._reader.join(timeout=5)
        return list(self.events)


class Receiver:
    """A JACK MIDI receiver that keeps what it hears, stamped, and which notes it holds (a synth
    honouring note-offs, and CC120/CC123 releasing a channel).

    JACK-Client, not python-rtmidi: an rtmidi input whose callback is set can crash the process when it
    is deleted while JACK's thread is about to call it (seen in full runs on a loaded machine). Each
    message is stamped with JACK's own time of its frame (`jack_frames_to_time`), in time.monotonic
    seconds, and its absolute frame is kept too (`frames`), as jack_midi_dump would print it.
    """

    def __init__(self, name: str = "synth", virtual: bool = False, port_name: str = "in") -> None:
        import jack

        self.messages: list[tuple[float, list[int]]] = []
        self.frames: list[int] = []
        self._lock = threading.Lock()
        self.client = jack.Client(name, no_start_server=True)
        with closed_if_setup_fails(self.client):
            self.rate = self.client.samplerate
            self.errors = 0
            self._last_frame: int | None = None
            self._event = jack._ffi.new("jack_midi_event_t*")
            self._times = _JackTimes(self.client)
            self.ports = [self.client.midi_inports.register("midi in" if virtual else port_name)]
            self.port_name = port_name
            self.client.set_process_callback(self._process)
            self.client.activate()

    def _process(self, frames: int) -> None:
        import jack

        lib, event = jack._lib, self._event
        try:
            now = lib.jack_last_frame_time(self.client._ptr)
            if self._last_frame is not None and now - self._last_frame > frames:
                HARNESS_MISSED.append(f"Receiver {self.client.name}: a period at frame {self._last_frame + frames}")
            self._last_frame = now
            first = None
            for port in list(self.ports):
                buffer = lib.jack_port_get_buffer(port._ptr, frames)
                for index in range(lib.jack_midi_get_event_count(buffer)):
                    if lib.jack_midi_event_get(event, buffer, index):
                        break
                    if first is None:  # one time look-up a period: each C call lets go of the GIL
                        first = now
                        start_s = self._times.monotonic_s(first)
                    frame = first + event.time
                    with self._lock:
                        self.messages.append((start_s + event.time / self.rate, list(jack._ffi.unpack(event.buffer, event.size))))
                        self.frames.append(frame)
        except Exception:  # JACK-Client stops calling a callback that raised
            self.errors += 1

    def add_port(self, name: str) -> str:
        """Another input port on this client (a synth with a second input); returns its full name."""
        self.ports.append(self.client.midi_inports.register(name))
        return self.ports[-1].name

    def remove_ports(self) -> None:
        """The synth goes away: its ports vanish while the client lives on."""
        ports, self.ports = self.ports, []
        for port in ports:
            port.unregister()

    def listen_to(self, port: str) -> None:
        """Connect to a port by its exact name, else the one whose name contains `port`."""
        names = [p.name for p in self.client.get_ports(is_midi=True, is_output=True)]
        self.client.connect(resolve_port(names, port, "output", "jack"), self.ports[0])
        self.settle()

    def settle(self, periods: int = 2) -> None:
        """Wait until the server has run `periods` whole cycles: a connection made now is in its graph only
        from a later cycle, and what the other side writes in the current one never arrives here (CI once
        missed a test's first three notes that way)."""
        wait_cycles(self.client, periods)

    def heard(self) -> list[list[int]]:
        with self._lock:
            return [m for _, m in self.messages]

    def held(self) -> set[tuple[int, int]]:
        return held_keys(self.heard())

    def note_ons(self, after: float = 0.0) -> list[float]:
        """When each note-on arrived (time.monotonic), from `after` on."""
        with self._lock:
            return [t for t, m in self.messages if m[0] & 0xF0 == 0x90 and m[2] > 0 and t >= after]

    def close(self) -> None:
        self.client.deactivate()  # waits for the process callback to return, with the GIL released
        self.client.close()


class _JackTimes:
    """JACK's own frame -> time (its DLL), shifted to time.monotonic: what a receiving client sees."""

    def __init__(self, client) -> None:
        from realtime.io.jackclock import client_pointer, libjack

        self._lib, self._client = libjack(), client_pointer(client)
        self._offset_us: float | None = None

    def monotonic_s(self, frame: int) -> float:
        lib = self._lib
        before, now, after = lib.jack_get_time(), time.monotonic_ns(), lib.jack_get_time()
        if self._offset_us is None or after - before < 30:
            self._offset_us = now / 1000 - (before + after) / 2
        return (lib.jack_frames_to_time(self._client, frame & 0xFFFFFFFF) + self._offset_us) / 1e6


class Keyboard:
    """A JACK MIDI sender playing into the engine's input; sends anything, hostile bytes included."""

    def __init__(self, name: str = "keys", port_name: str = "out") -> None:
        self.name, self.port_name = name, port_name
        self.port = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name)

    def play_into(self, port: str) -> None:
        """Connect to a port by its exact name, else the one whose name contains `port`."""
        names = self.port.get_ports()
        self.port.open_port(names.index(resolve_port(names, port, "input", "jack")), self.port_name)
        self.settle()

    def settle(self, periods: int = 2) -> None:
        """A message sent in the cycle the connection joins the graph is lost (CI once lost a clock's Start
        that way): wait until the server has run whole cycles with it, timed by a JACK client of our own."""
        with timer_client(f"{self.name}-timer") as timer:
            wait_cycles(timer, periods)

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


class MidiSeq:
    """JACK's own `jack_midiseq` as a keyboard in its own process: a C client that writes each note at its frame
    (velocity 64, channel 1), so no load on this process can lose or delay one. A JACK-Client sequencer here
    needs the test process's interpreter lock in its callback, and beside two CPU burners it lost a note now
    and then (the dump heard 29 of 30). It plays `notes` [(on s, off s or None: held, pitch)] once, from
    `lead_s` after it starts (time to connect it), in a loop longer than the notes, then is stopped."""

    def __init__(self, notes, name: str = "seq", lead_s: float = 2.0, rate: int = 48_000) -> None:
        self.name, self.lead_s, self.rate = name, lead_s, rate
        ends = [off if off is not None else on for on, off, _ in notes]
        loop = round((lead_s + max(ends) + 30.0) * rate)
        args = []
        for on, off, pitch in notes:  # a note whose off falls past the loop's end is never released
            length = loop if off is None else round((off - on) * rate)
            args += [str(round((lead_s + on) * rate)), str(pitch), str(max(1, length))]
        self.proc = subprocess.Popen(["jack_midiseq", name, str(loop), *args], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
        self.started = time.monotonic()
        if not wait_for(lambda: f"{name}:out" in MidiDump._ports(), 5.0):
            self.close()
            raise AssertionError("jack_midiseq did not register its port")

    def play_into(self, port: str) -> None:
        subprocess.run(["jack_connect", f"{self.name}:out", port], check=True)

    def close(self) -> None:
        stop_process(self.proc)


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
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=engine_child)  # Ctrl-C stops it, even from a benchmark run in the background
    line = proc.stdout.readline()
    if "running" not in line:
        proc.kill()
        raise RuntimeError(f"realtime run did not start: {line} {proc.communicate()[1][-400:]}")
    return proc


class Running:
    """`realtime run PATCH FLAGS` for a with-block, stopped with Ctrl-C (SIGINT) at its end and killed if it
    does not stop; then `out`, `err` and `returncode` as a user would see them (printed when the block failed)."""

    def __init__(self, patch: Path, *flags: str) -> None:
        self.proc = run_realtime(patch, *flags)
        self.out = self.err = ""
        self.returncode: int | None = None

    def __enter__(self) -> Running:
        return self

    def __exit__(self, failed, *_) -> None:
        proc = self.proc
        try:
            proc.send_signal(signal.SIGINT)
            self.out, self.err = proc.communicate(timeout=20 if failed is None else 5)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            self.returncode = proc.returncode
            if failed is not None:  # what the engine said, beside the failure pytest reports
                print(f"realtime run said (exit {self.returncode}):\n{self.out[-2000:]}\n{self.err[-3000:]}",
                      file=sys.stderr)


def start_realtime(folder: Path, *flags: str, output: str = "") -> tuple[subprocess.Popen, Path]:
    """`realtime run` on RUN_PATCH (written to `folder`), and the patch's path for reloading."""
    patch = folder / "jack.toml"
    patch.write_text(RUN_PATCH.format(output=f'output = "{output}"' if output else ""))
    return run_realtime(patch, *flags), patch


class DelayLine:
    """A JACK MIDI client that plays back what it hears `delay_ms` later, to the frame: a device with a
    known latency, for `realtime calibrate` to find."""

    def __init__(self, name: str = "delay", delay_ms: float = 12.0, mute: bool = False) -> None:
        import jack

        self.mute = mute  # hears, sends nothing back: a loopback cable that is not plugged in
        self.client = jack.Client(name, no_start_server=True)
        self._pending: list[tuple[int, bytes]] = []
        with closed_if_setup_fails(self.client):
            self.delay_frames = round(delay_ms * self.client.samplerate / 1000)
            self.inport = self.client.midi_inports.register("in")
            self.outport = self.client.midi_outports.register("out")
            self.client.set_process_callback(self._process)
            self.client.activate()

    def _process(self, frames: int) -> None:
        first = self.client.last_frame_time
        for offset, data in self.inport.incoming_midi_events():
            if not self.mute:
                self._pending.append((first + offset + self.delay_frames, bytes(data)))
        self.outport.clear_buffer()
        keep = []
        for frame, data in self._pending:
            if frame < first + frames:
                self.outport.write_midi_event(max(0, frame - first), data)
            else:
                keep.append((frame, data))
        self._pending = keep

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()
