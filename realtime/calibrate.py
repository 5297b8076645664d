"""`realtime calibrate`: measure what a MIDI output's device adds, through a loopback, and write it down.

The engine plays test notes on the patch's MIDI output at known deadlines; whatever comes back on the
patch's MIDI input (a device's MIDI thru, a synth's echo, a cable from out to in) is stamped with the
time of its frame. The median of (heard - deadline) is the device's latency; `--write` puts it into
the patch as `[midi] latency_ms`, so the engine sends that much earlier from then on. Both ports keep
time by frame (the JACK backend), so nothing but the device is measured.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tomlkit

from .clock import SystemClock
from .errors import PortError
from .events import NoteMessage
from .patch import Patch, load_patch
from .patchedit import edit_patch
from .scheduler import Scheduler

TEST_PITCHES = (60, 64, 67, 72)


@dataclass(frozen=True)
class Calibration:
    latency_ms: float  # median of heard - deadline
    spread_ms: float  # p90 - p10 of the same
    heard: int
    sent: int


def measure(patch: Patch, trials: int = 16, gap_ms: float = 120.0, timeout_s: float = 2.0,
            output: str | None = None, input_port: str | None = None) -> Calibration:
    """Play `trials` notes on the patch's output, hear them back on its input, return the latency."""
    from .io.midibackend import open_input, open_output

    backend = patch.midi.backend or "jack"
    if backend != "jack":
        raise PortError(f"calibrate needs the jack backend (frame-stamped both ways), not {backend}")
    clock = SystemClock()
    out = open_output(clock, output or patch.midi.output, backend, client_name=f"{patch.midi.client_name}-cal")
    inp = None
    try:
        inp = open_input(clock, input_port or patch.midi.input, backend, client_name=f"{patch.midi.client_name}-cal")
        heard: list[tuple[int, int]] = []  # (pitch, at_ns) of note-ons coming back
        lock = threading.Lock()

        def listen(message, at_ns: int) -> None:
            if isinstance(message, NoteMessage) and message.is_on:
                with lock:
                    heard.append((message.pitch, at_ns))

        inp.set_listener(listen)
        scheduler = Scheduler(out, clock)
        scheduler.start(realtime_priority=True)
        first = clock.now_ns() + 200_000_000
        deadlines = []
        for trial in range(trials):
            at = first + int(trial * gap_ms * 1e6)
            pitch = TEST_PITCHES[trial % len(TEST_PITCHES)]
            scheduler.push(NoteMessage(pitch, 100), at)
            scheduler.push(NoteMessage(pitch, 0), at + int(gap_ms * 0.4e6))
            deadlines.append((pitch, at))
        time.sleep((first - clock.now_ns()) / 1e9 + trials * gap_ms / 1000 + timeout_s)
        scheduler.stop()
    finally:
        out.close()
        if inp is not None:
            inp.close()
    latencies = []
    with lock:
        arrivals = list(heard)
    for pitch, at in deadlines:  # each note-on back is matched to the latest deadline before it
        later = [t for p, t in arrivals if p == pitch and at <= t < at + int(gap_ms * 1e6 * len(TEST_PITCHES))]
        if later:
            latencies.append((min(later) - at) / 1e6)
    if not latencies:
        raise PortError("calibrate heard nothing back: connect the output through the device to the input "
                        f"({out.name} -> device -> {inp.name if inp else 'input'})")
    values = np.array(latencies)
    return Calibration(float(np.median(values)), float(np.percentile(values, 90) - np.percentile(values, 10)),
                       len(latencies), trials)


def write_latency(path: Path, latency_ms: float) -> None:
    """Set `[midi] latency_ms` in a patch file, keeping every other line and comment as it was; a value
    the patch would refuse is never written."""
    def edit(doc) -> None:
        if "midi" not in doc:
            doc.add("midi", tomlkit.table())
        midi = doc["midi"]
        if "latency_ms" in midi:
            midi["latency_ms"] = round(latency_ms, 2)  # keeps the line's own comment
        else:
            value = tomlkit.item(round(latency_ms, 2))
            value.comment("measured by realtime calibrate")
            midi.add("latency_ms", value)

    edit_patch(path, edit, "the measured latency")


def run(patch_path: str, trials: int, write: bool, output: str | None, input_port: str | None) -> Calibration:
    patch = load_patch(patch_path)
    result = measure(patch, trials=trials, output=output, input_port=input_port)
    print(f"realtime: output latency {result.latency_ms:.2f} ms (spread p10-p90 {result.spread_ms:.2f} ms, "
          f"{result.heard} of {result.sent} notes heard back)")
    if write:
        write_latency(Path(patch_path), result.latency_ms)
        print(f"realtime: wrote [midi] latency_ms = {result.latency_ms:.2f} into {patch_path}")
    return result
