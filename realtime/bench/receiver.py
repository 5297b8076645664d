"""The JACK rows of benchmarks/latency.py, measured where a listener is: at a receiving JACK client.

The engine runs as `realtime run` in its own process on a private `jackd -d dummy`. This process is
the player and the listener in one JACK-Client client: it writes the phrase at chosen frames and
stamps every answer event with its frame, converted to time by JACK itself (`jack_frames_to_time`,
JACK's DLL), so the dummy driver's drift against the wall clock at small periods is JACK's view too.

- reaction: the player's last note-off -> the first answer note-on, minus the phrase-end silence;
- onset spread (diagnostic): every later answer onset against a 1/24-beat grid from the first one, in
  JACK's time of each frame and in raw frames (`onset_error_frames`). The duet's deadlines do not
  all sit on that grid (a few came 0.5 ms off with ports measured exact), so the timing error a
  listener hears is judged on the game patch instead (`clock_and_notes`): its clock pulses are the
  engine's grid and every note-on must coincide with one;
- misses: the engine's own count of notes handed over later than its budget (from its last status).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from realtime.bench.jackd import JackServer
from realtime.childproc import engine_child
from realtime.io.jackclock import client_pointer, libjack

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def jack_server(period: int):
    """A private dummy server at `period` frames for one measurement; yields its name."""
    with JackServer(period=period, prefix="realtime-bench") as server:
        yield server.name


class PlayerListener:
    """A JACK-Client client: `out` plays events at absolute frames, `in` keeps (frame, bytes) heard."""

    def __init__(self, name: str = "bench-player") -> None:
        import jack

        self.jack = jack
        self.client = jack.Client(name, no_start_server=True)
        self.rate = self.client.samplerate
        self.out = self.client.midi_outports.register("out")
        self.inp = self.client.midi_inports.register("in")
        self.heard: list[tuple[int, bytes]] = []
        # frames where JACK's frame count jumped past a period between two calls of this callback: what came in
        # then is lost to it, and what it should have written then went out late (seen under load, 1 run in 3
        # beside a training job: a Python callback waits for the interpreter lock)
        self.missed: list[int] = []
        self._last_frame: int | None = None
        self._to_play: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()
        self._lib, self._ptr = libjack(), client_pointer(self.client)
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        first = self.client.last_frame_time
        if self._last_frame is not None and first - self._last_frame > frames:
            self.missed.append(self._last_frame + frames)
        self._last_frame = first
        for offset, data in self.inp.incoming_midi_events():
            self.heard.append((first + offset, bytes(data)))
        self.out.clear_buffer()
        with self._lock:
            due = [item for item in self._to_play if item[0] < first + frames]
            self._to_play = [item for item in self._to_play if item[0] >= first + frames]
        for frame, data in due:
            self.out.write_midi_event(max(0, frame - first), data)

    def play(self, events: list[tuple[float, bytes]], lead_s: float = 0.05) -> list[int]:
        """Play (seconds from now + lead, bytes) at exact frames; returns each event's frame."""
        start = self.client.frame_time + int(lead_s * self.rate)
        frames = [start + int(at * self.rate) for at, _ in events]
        with self._lock:
            self._to_play += [(frame, data) for frame, (_, data) in zip(frames, events)]
        return frames

    def us_at(self, frame: int) -> int:
        """JACK's own time of a frame (microseconds), from its DLL."""
        return self._lib.jack_frames_to_time(self._ptr, frame & 0xFFFFFFFF)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def _wait_for_ports(player: PlayerListener, engine: subprocess.Popen, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if engine.poll() is not None:
            raise RuntimeError(f"the engine exited: {engine.stderr.read().strip()[-300:]}")
        names = [p.name for p in player.client.get_ports(is_midi=True)]
        if "realtime-in:in" in names and "realtime-out:out" in names:
            try:
                if not player.out.is_connected_to("realtime-in:in"):
                    player.client.connect(player.out, "realtime-in:in")
                if not player.inp.is_connected_to("realtime-out:out"):
                    player.client.connect("realtime-out:out", player.inp)
                return
            except player.jack.JackError:
                pass  # a port is listed from its registration, connectable once its client is active
        time.sleep(0.05)
    raise RuntimeError("the engine's JACK MIDI ports did not appear")


def _stop(engine: subprocess.Popen) -> str:
    """Ctrl-C to `realtime run`, as a user stops it; its printed output (the last status line)."""
    engine.send_signal(2)
    try:
        return engine.communicate(timeout=15)[0]
    except subprocess.TimeoutExpired:
        engine.kill()
        return engine.communicate()[0]


def _summary(values_ms: list[float]) -> dict:
    a = np.asarray(values_ms, dtype=np.float64)
    if not len(a):
        return {"n": 0}
    return {"n": int(len(a)), "p50_ms": round(float(np.percentile(a, 50)), 4),
            "p99_ms": round(float(np.percentile(a, 99)), 4), "max_ms": round(float(a.max()), 4)}


def through_jack(period: int, trials: int, backend: str, patch_text: str, phrase: list[tuple[int, int]],
                 phrase_end_ms: float, tempo_bpm: float) -> dict:
    """`realtime run` on a private server at `period` frames, MIDI `backend` (jack or jack-rtmidi)."""
    grid_us = 60e6 / tempo_bpm / 24
    with jack_server(period) as server, tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, JACK_DEFAULT_SERVER=server, JACK_NO_START_SERVER="1")
        os.environ["JACK_DEFAULT_SERVER"] = server
        patch = Path(tmp) / "bench.toml"
        patch.write_text(patch_text.replace("@BACKEND@", backend))
        engine = subprocess.Popen([sys.executable, "-m", "realtime.cli", "run", str(patch)], env=env, cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  preexec_fn=engine_child)
        player = PlayerListener()
        reactions, onset_errors, onset_errors_frames, unanswered = [], [], [], 0
        try:
            _wait_for_ports(player, engine)
            time.sleep(0.5)
            for _ in range(trials):
                events, at = [], 0.0
                for pitch, velocity in phrase:
                    events += [(at, bytes((0x90, pitch, velocity))), (at + 0.03, bytes((0x80, pitch, 0)))]
                    at += 0.03
                mark = len(player.heard)
                released = player.play(events)[-1]
                time.sleep(0.05 + at + phrase_end_ms / 1000 + 1.2)
                ons = [frame for frame, data in player.heard[mark:] if data[0] & 0xF0 == 0x90 and data[2]]
                ons = [frame for frame in ons if frame > released]
                if not ons:
                    unanswered += 1
                    continue
                first_us = player.us_at(ons[0])
                reactions.append((first_us - player.us_at(released)) / 1000 - phrase_end_ms)
                grid_frames = grid_us * player.rate / 1e6
                for frame in ons[1:]:
                    since = (player.us_at(frame) - first_us) / grid_us  # JACK's time of the frame
                    onset_errors.append(abs(since - round(since)) * grid_us / 1000)
                    since = (frame - ons[0]) / grid_frames  # raw frames at the nominal rate
                    onset_errors_frames.append(abs(since - round(since)) * grid_us / 1000)
        finally:
            player.close()
            out = _stop(engine)
        misses = re.findall(r"misses (\d+)", out)
    period_ms = period / 48.0
    return {"backend": backend, "period_frames": period, "period_ms": round(period_ms, 4), "trials": trials,
            "no_answer": unanswered, "reaction": _summary(reactions), "onset_error": _summary(onset_errors),
            "onset_error_frames": _summary(onset_errors_frames),
            "misses": int(misses[-1]) if misses else None, "measured_at": "receiving JACK client (JACK frame time)",
            "raw_reaction_ms": np.round(reactions, 4).tolist(), "raw_onset_error_ms": np.round(onset_errors, 4).tolist()}


def clock_and_notes(period: int, backend: str, game_patch: str, seconds: float = 8.0) -> dict:
    """The game patch's MIDI clock and notes at a receiving client: each pulse against the line through
    its neighbours (in JACK's frame times) and against a line fitted through them all (raw frames),
    and every note-on against the nearest pulse (its onsets are multiples of 1/24 beat)."""
    with jack_server(period) as server, tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, JACK_DEFAULT_SERVER=server, JACK_NO_START_SERVER="1")
        os.environ["JACK_DEFAULT_SERVER"] = server
        patch = Path(tmp) / "game.toml"
        patch.write_text(game_patch.replace("[midi]\n", f'[midi]\nbackend = "{backend}"\n', 1))
        engine = subprocess.Popen([sys.executable, "-m", "realtime.cli", "run", str(patch), "--no-osc"], env=env,
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  preexec_fn=engine_child)
        player = PlayerListener("bench-listener")
        try:
            _wait_for_ports(player, engine)
            time.sleep(seconds)
            heard = list(player.heard)
            times_us = np.array([player.us_at(frame) for frame, _ in heard], dtype=np.float64)
        finally:
            player.close()
            out = _stop(engine)
    frames = np.array([frame for frame, _ in heard], dtype=np.float64)
    is_pulse = np.array([data == b"\xf8" for _, data in heard])
    is_on = np.array([data[0] & 0xF0 == 0x90 and len(data) == 3 and data[2] > 0 for _, data in heard])
    pulse_us, pulse_frames = times_us[is_pulse], frames[is_pulse]
    if len(pulse_us) < 24:
        return {"backend": backend, "period_frames": period, "pulses": int(len(pulse_us)), "note": "too few pulses"}
    local_ms = np.abs(pulse_us[1:-1] - (pulse_us[:-2] + pulse_us[2:]) / 2) / 1000
    steady = pulse_frames[-min(len(pulse_frames), 150):]  # the last stretch: one state's tempo
    index = np.arange(len(steady))
    fit = np.polyfit(index, steady, 1)
    line_ms = np.abs(steady - np.polyval(fit, index)) / 48.0
    on_us = times_us[is_on]
    on_us = on_us[(on_us > pulse_us[0]) & (on_us < pulse_us[-1])]
    nearest_ms = (np.min(np.abs(on_us[:, None] - pulse_us[None, :]), axis=1) / 1000) if len(on_us) else []
    misses = re.findall(r"misses (\d+)", out)
    return {"backend": backend, "period_frames": period, "pulses": int(len(pulse_us)),
            "pulse_error": _summary(local_ms.tolist()), "pulse_line_error_frames": _summary(line_ms.tolist()),
            "note_on_error": _summary(list(nearest_ms)), "note_ons": int(len(on_us)),
            "misses": int(misses[-1]) if misses else None}
