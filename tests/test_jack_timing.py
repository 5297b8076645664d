"""What a receiving JACK client hears: notes and MIDI clock at their frames, inputs stamped by frame.

Foreign clients on both ends: JACK's own `jack_midi_dump -a` prints the absolute frame of every event
it receives, `jack_midiseq` loops notes at exact frames. A steady tempo puts every clock pulse on a
straight line through pulse index and frame; with python-rtmidi each event landed at the start of the
next period (up to 5.3 ms off at 256 frames), with the JACK-Client backend within a frame or two.
The bounds are on frames the engine computed and wrote, not on wall-clock timings. This VM stalls now
and then (a 2 ms sleep overshot by over 3 ms 13 times in 8 s, idle), and the dummy driver's cycle
slips with it, so the bounds are on the median and on 80-85% of events; rtmidi's period quantization
(0-5.3 ms at 256 frames) fails them all by far. The latency benchmark reports p99 and max.
"""

from __future__ import annotations

import subprocess
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from jackclients import MidiDump, run_realtime, wait_for

from realtime.childproc import die_with_parent
from realtime.clock import SystemClock
from realtime.events import NoteMessage
from realtime.io.midibackend import open_input

ROOT = Path(__file__).resolve().parents[1]
RATE = 48_000


def _tempos(raw: dict) -> list[float]:
    return [raw["engine"]["tempo_bpm"]] + [s["tempo_bpm"] for s in raw["game"]["states"].values() if "tempo_bpm" in s]


def test_game_clock_and_notes_land_on_their_frames(jack256, tmp_path: Path) -> None:
    raw = tomllib.loads((ROOT / "patches" / "game.toml").read_text())
    dump = MidiDump()
    patch = tmp_path / "game.toml"
    text = (ROOT / "patches" / "game.toml").read_text()
    text = text.replace('[midi]\n', '[midi]\nbackend = "jack"\n', 1).replace("port = 9000", "port = 0")
    patch.write_text(text)
    assert tomllib.loads(text)["game"]["midi_clock_out"] and raw["engine"]["mode"] == "game"
    proc = run_realtime(patch, "--no-osc")
    try:
        assert wait_for(lambda: "realtime-out:out" in subprocess.run(["jack_lsp"], capture_output=True,
                                                                    text=True).stdout, 5.0)
        dump.listen_to("realtime-out:out")
        time.sleep(6.0)
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    events = [(frame, bytes(data)) for frame, data in dump.close()]
    pulses = np.array([frame for frame, data in events if data == b"\xf8"], dtype=float)
    assert len(pulses) > 150, f"6 s of clock at 84-96 BPM is over 200 pulses, heard {len(pulses)}"
    # The dummy driver's frame rate wanders against the wall clock on a busy machine, so a straight line
    # through 6 s of pulses may bend; each pulse against the midpoint of its neighbours (52 ms apart)
    # does not. rtmidi, writing at the start of the next period, spreads this over 0-5.3 ms.
    error = np.abs(pulses[1:-1] - (pulses[:-2] + pulses[2:]) / 2) / RATE * 1000
    assert np.median(error) <= 0.03 and np.mean(error <= 0.1) >= 0.85, \
        f"pulse error p50 {np.median(error):.3f} ms, within 0.1 ms: {np.mean(error <= 0.1):.0%}"
    bpm = RATE * 60 / 24 / np.median(np.diff(pulses))
    assert any(bpm == pytest.approx(tempo, rel=5e-3) for tempo in _tempos(raw)), f"a patch tempo, not {bpm:.2f}"
    onsets = np.array([frame for frame, data in events if data[0] & 0xF0 == 0x90 and data[2]], dtype=float)
    onsets = onsets[(onsets > pulses[0]) & (onsets < pulses[-1])]
    assert len(onsets) >= 8, "the game's voices played"
    # every onset falls on a clock pulse (IOIs are multiples of 1/24 beat): its frame distance to the
    # nearest pulse is the error a receiver hears between the notes and the clock
    nearest = np.min(np.abs(onsets[:, None] - pulses[None, :]), axis=1) / RATE * 1000
    assert np.median(nearest) <= 0.03 and np.mean(nearest <= 0.1) >= 0.85, \
        f"note-on error p50 {np.median(nearest):.3f} ms, within 0.1 ms: {np.mean(nearest <= 0.1):.0%}"


def test_inputs_are_stamped_with_the_time_of_their_frame(jack256) -> None:
    heard: list[tuple[NoteMessage, int]] = []
    inp = open_input(SystemClock(), None, "jack")
    inp.set_listener(lambda message, at_ns: heard.append((message, at_ns)))
    # a foreign sequencer: note-ons at frames 0 and 12,000 of a 24,000-frame loop (every 250 ms)
    seq = subprocess.Popen(["jack_midiseq", "seq", "24000", "0", "60", "2000", "12000", "62", "2000"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
    try:
        assert wait_for(lambda: "seq:out" in subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout, 5)
        subprocess.run(["jack_connect", "seq:out", inp.name], check=True)
        assert wait_for(lambda: sum(1 for m, _ in heard if m.is_on) >= 13, 6.0)
    finally:
        seq.terminate()
        seq.wait(5)
        inp.close()
    ons = np.array([at for message, at in heard if message.is_on], dtype=float)
    gaps_ms = np.diff(ons) / 1e6
    # 12,000 frames; the dummy driver's frames fall behind the wall clock on a busy machine (by up to
    # 9% measured here), and a stamp is when its frame happened, so compare the gaps with each other
    assert 240 <= np.median(gaps_ms) <= 280
    # each gap against the next: the frame clock's rate follows the dummy driver's slow drift, which
    # moves all gaps alike; stamped when the callback ran instead, they would differ by up to a period
    # (5.3 ms): by ~1.6 ms at the median, within 0.5 ms for under 20% of gaps. This VM stalls now and
    # then (a 2 ms sleep overshot by up to 10 ms, idle or not) and the dummy driver's cycle start times
    # wobble with it, which the frame clock's line follows a little (gap-to-gap p50 0.03-0.07 ms here).
    spread = np.abs(np.diff(gaps_ms))
    assert np.median(spread) <= 0.25 and np.mean(spread <= 0.5) >= 0.75, \
        f"frame-stamped onsets 250 ms apart: gap-to-gap p50 {np.median(spread):.3f} ms, " \
        f"within 0.5 ms: {np.mean(spread <= 0.5):.0%}, worst {spread.max():.3f} ms"
    assert all(m.pitch in (60, 62) for m, _ in heard)


def test_latency_ms_plays_that_much_earlier(jack256) -> None:
    from jackclients import Receiver

    from realtime.io.midibackend import open_output
    from realtime.io.ports import FanOut
    from realtime.scheduler import Scheduler

    clock = SystemClock()
    plain = open_output(clock, None, "jack", client_name="plain")
    early = open_output(clock, None, "jack", client_name="early", latency_ms=10.0)  # a slow synth behind it
    ears = Receiver("ears", port_name="plain")
    second = ears.add_port("early")
    ears.client.connect(plain.name, ears.ports[0])
    ears.client.connect(early.name, second)
    scheduler = Scheduler(FanOut([plain, early]), clock)  # one push, each output at its own lead
    scheduler.start(realtime_priority=True)  # as live: a sleeping normal thread woke >10 ms late here
    try:
        start = clock.now_ns() + 100_000_000
        for k in range(8):
            scheduler.push(NoteMessage(60 + k, 100), start + k * 50_000_000)
        assert wait_for(lambda: len(ears.frames) >= 16, 3.0)
    finally:
        scheduler.stop()
        plain.close()
        early.close()
        ears.close()
    by_pitch: dict[int, list[int]] = {}
    for frame, (_, message) in zip(ears.frames, ears.messages):
        if message[0] == 0x90:
            by_pitch.setdefault(message[1], []).append(frame)
    differences = [frames[0] - frames[1] for frames in by_pitch.values() if len(frames) == 2]
    assert len(differences) == 8
    # each pitch comes first from the port with latency_ms = 10, 480 frames (10 ms at 48 kHz) ahead; one
    # handed over after its period began (a loaded machine stalled the scheduler past its lead) goes out
    # at the next period's start and is counted late by its port, which the status line shows as a miss
    off = [d for d in differences if abs(d + 480) > 2]
    assert len(off) <= plain.late + early.late and len(off) <= 2, (differences, plain.late, early.late)
