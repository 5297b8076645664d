"""mode = "leadsheet" as a user runs it: `realtime run patches/leadsheet.toml --midi-backend jack` in its own
process (`start = "first_note"`, so the test knows bar 1: a foreign rtmidi keyboard plays one note), JACK's own
`jack_midi_dump` hearing the band by frame and a JACK-Client receiver counting the notes it holds. Over ~8
bars at 100 BPM: every band note against the ideal bar lines of the patch's tempo, the bass's beat-to-beat
intervals, strong-beat chord tones and roots on beat 1 (realtime/bench/leadlive.py `judge`); liblo's
`oscsend` sends a bad progression (refused in one line, the old one plays on) and then a good one in the
middle of bar 3, which must begin on bar 4's line; after Ctrl-C nothing sounds. Timing is judged by JACK's
own time of each frame, as the receiver stamps it (the dummy driver's frame count drifts from the wall clock
on a loaded machine); the dump's frames are printed beside. Thresholds have margins: this VM is shared and
loaded. `pytest -s` prints the figures the README quotes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
from jackclients import Keyboard, MidiDump, Receiver, Running, wait_for
from test_run_osc import _free_port

from realtime.bench.harmony import patch_text
from realtime.bench.accompaniment import notes_of
from realtime.bench.leadlive import judge
from realtime.leadsheet.parse import parse_text
from realtime.stagesettings import DEFAULT_PROGRESSION

ROOT = Path(__file__).resolve().parents[1]
BPM, BARS = 100.0, 8
NEW = "| C | Am | F | G7 " * 6 + "|"  # 115 bytes: a chain of two of the intake ring's records
BASS = 0x91  # a note-on on channel 2


def _oscsend(port: int, address: str, text: str) -> None:
    subprocess.run(["oscsend", "127.0.0.1", str(port), address, "s", text], check=True, timeout=5)


def test_the_band_keeps_the_bar_lines_and_a_progression_sent_by_osc_lands_on_the_next(jack256, tmp_path):
    port = _free_port()
    text = patch_text((ROOT / "patches" / "leadsheet.toml").read_text())
    assert 'mode = "leadsheet"' in text and "tempo_bpm = 100" in text and 'start = "now"' in text
    patch = tmp_path / "leadsheet.toml"
    patch.write_text(text.replace('start = "now"', 'start = "first_note"').replace("port = 9000", f"port = {port}"))
    dump = MidiDump()
    with Running(patch) as run:
        synth, keyboard = Receiver(), Keyboard()
        try:
            dump.listen_to("realtime-out:out")
            synth.listen_to("realtime-out")
            keyboard.play_into("realtime-in")
            rate, bar_s = synth.rate, 4 * 60 / BPM
            keyboard.note(76, 90)  # the band starts on it
            # the test's own threads keep quiet while the band plays: the receiver's JACK callback needs this
            # process's GIL, and a busy poll here could make the whole graph late (sleeps, never polling)
            assert wait_for(lambda: synth.note_ons(), 3.0, 0.01), "the band did not start"
            keyboard.note(76, 0)
            first_s = synth.note_ons()[0]
            time.sleep(max(0.0, first_s + 1.5 * bar_s - time.monotonic()))
            _oscsend(port, "/leadsheet/progression", "| C | Hx7 | F |")  # refused: the old one plays on
            time.sleep(max(0.0, first_s + 2.5 * bar_s - time.monotonic()))
            sent, sent_s = synth.client.frame_time, time.monotonic()
            _oscsend(port, "/leadsheet/progression", NEW)
            took_s = time.monotonic() - sent_s
            time.sleep(max(0.0, first_s + BARS * bar_s + 0.1 - time.monotonic()))
        finally:
            keyboard.close()
    time.sleep(0.2)
    held = synth.held()
    synth_heard = list(synth.messages)  # stamped with JACK's own time of each frame (jack_frames_to_time)
    synth.close()
    events = dump.close()
    assert run.returncode == 0, run.err[-400:]
    assert held == set(), f"still sounding after Ctrl-C: {held}"
    refusals = [line for line in run.err.splitlines() if "/leadsheet/progression refused" in line]
    assert len(refusals) == 1 and '"Hx7" at token 2' in refusals[0], run.err[-600:]
    assert took_s < 0.5 * bar_s, "oscsend took too long for the landing to be known"

    by_frame = _figures([(frame / rate, data) for frame, data in events if len(data) == 3], sent / rate)
    by_time = _figures([(t, data) for t, data in synth_heard if len(data) == 3], sent_s)
    for name, f in (("JACK's time of each frame", by_time), ("frames", by_frame)):
        r, lines, later, intervals = f["result"], f["result"]["bar_line_error_ms"], f["later"], f["result"][
            "bass_interval_error_ms"]
        print(f"\nleadsheet over JACK at 256 frames, {BARS} bars at {BPM:g} BPM, by {name}: band note-ons off the "
              f"ideal bar lines p50 {lines['p50']:.2f} ms p99 {lines['p99']:.2f} ms max {lines['max']:.2f} ms "
              f"({lines['n']} downbeats; from bar 2 p50 {later['p50']:.2f} p99 {later['p99']:.2f} ms, bar 1 "
              f"{f['first_ms']:+.2f} ms); bass beat-to-beat interval error p50 {intervals['p50']:.2f} ms p99 "
              f"{intervals['p99']:.2f} ms; strong-beat chord tones {r['strong_beat_chord_tones']:.1%} of "
              f"{r['strong_beat_notes']}, roots on {r['roots_on_downbeats']:.1%} of {r['downbeats']} downbeats; the "
              f"new progression from bar {f['landing'] + 1}; held after Ctrl-C: {sorted(held)}")
    # Judged by JACK's time of each frame: bar 1 waits a period (5.3 ms) for the keyboard's note, later bars keep
    # the patch's tempo. The frames are printed, not judged: on a loaded machine the dummy driver's frames drift
    # from the wall clock (up to 9%: realtime/io/jackclock.py; seen here as 100-270 ms over 8 bars in 2 of 6 runs
    # whose JACK times were exact), while the engine keeps the wall clock's time, as a sound card would
    r = by_time["result"]
    assert by_time["landing"] == 3, by_time["landing"]  # sent in the middle of bar 3: bar 4 begins the new one
    assert r["strong_beat_chord_tones"] >= 0.85 and r["roots_on_downbeats"] >= 0.75, r
    assert r["downbeats"] == BARS, r
    # every band note ended with its own note-off, counted by the C dump: the receiver in this process (its
    # callback needs this process's interpreter lock) missed a period's events beside two burners in CI
    unended = notes_of([(frame / rate, data) for frame, data in events if len(data) == 3])[1]
    assert unended == [], f"band notes never ended by their note-off: {unended}"
    status = run.out.strip().splitlines()[-1][-200:]
    lines, later = by_time["result"]["bar_line_error_ms"], by_time["later"]
    assert lines["p99"] <= 12.0 and later["p99"] <= 8.0, (lines, later, by_time["off_grid"], status)
    assert by_time["result"]["bass_interval_error_ms"]["p99"] <= 8.0, (by_time["off_grid"], status)
    assert {d[0] & 0x0F for _, d in events if len(d) == 3 and d[0] & 0xF0 == 0x90} <= {1, 2}, "never channel 1"


def _figures(heard: list, sent_s: float) -> dict:
    """The band as heard (s, bytes): the bar lines fitted at the patch's tempo, the bar the new progression
    should land on, and judge's figures over the 8 bars (and from bar 2 on)."""
    beat_s = 60 / BPM
    bass = np.array([t for t, d in heard if d[0] == BASS and d[2]])
    beats = np.round((bass - bass[0]) / beat_s)
    origin = bass[0] + float(np.median(bass - bass[0] - beats * beat_s))  # bar lines: the patch's tempo, fitted
    landing = int(np.ceil((sent_s - origin) / (4 * beat_s)))
    segments = [(0, parse_text(DEFAULT_PROGRESSION)), (landing, parse_text(NEW))]
    end = origin + BARS * 4 * beat_s - 0.05
    result = judge([(t, d) for t, d in heard if t < end], origin, BPM, segments, bars=range(BARS))
    later = judge([(t, d) for t, d in heard if origin + 4 * beat_s - 0.05 < t < end], origin, BPM, segments,
                  bars=range(1, BARS))["bar_line_error_ms"]  # bar 1 waits for the note
    return {"result": result, "later": later, "landing": landing, "first_ms": (bass[0] - origin) * 1000,
            "off_grid": np.round((bass - origin - beats * beat_s) * 1000, 1).tolist()}
