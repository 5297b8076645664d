"""Musical time: the tempo clock's beats and bars, MIDI clock out and in on raw bytes."""

from __future__ import annotations

import pytest

from realtime.clock import TempoClock
from realtime.io.midiclock import PPQN, START, STOP, TIMING_CLOCK, MidiClockIn, MidiClockOut

BEAT_NS_120 = 500_000_000


def test_beats_and_bars_at_a_steady_tempo():
    tempo = TempoClock(120, beats_per_bar=4, origin_ns=1_000)
    assert tempo.ns_at(0) == 1_000 and tempo.ns_at(3.5) == 1_000 + 7 * BEAT_NS_120 // 2
    assert tempo.beat_at(1_000 + BEAT_NS_120) == 1.0
    assert tempo.next_beat_ns(1_000 + 10) == 1_000 + BEAT_NS_120
    assert tempo.next_bar_ns(1_000 + 10) == 1_000 + 4 * BEAT_NS_120
    # exactly on a boundary: the next one (notes on this one may already be out)
    assert tempo.next_bar_ns(1_000 + 4 * BEAT_NS_120) == 1_000 + 8 * BEAT_NS_120
    assert tempo.next_beat_ns(1_000 + 4 * BEAT_NS_120) == 1_000 + 5 * BEAT_NS_120


def test_tempo_change_keeps_passed_beats_and_bends_future_ones():
    tempo = TempoClock(120)
    tempo.set_tempo(60, at_ns=2 * BEAT_NS_120)  # at beat 2
    assert tempo.beat_at(2 * BEAT_NS_120) == 2.0
    assert tempo.ns_at(3) == 2 * BEAT_NS_120 + 1_000_000_000  # one beat at 60 BPM is a second
    assert tempo.next_bar_ns(2 * BEAT_NS_120 + 1) == 2 * BEAT_NS_120 + 2 * 1_000_000_000
    with pytest.raises(ValueError):
        tempo.set_tempo(0, at_ns=0)


def test_clock_out_sends_start_then_24_pulses_per_beat_following_tempo():
    tempo = TempoClock(120, origin_ns=0)
    out = MidiClockOut(tempo)
    out.start(0)
    first = out.due(BEAT_NS_120)  # one beat
    assert first[0] == (0, bytes([START]))
    pulses = [t for t, data in first if data == bytes([TIMING_CLOCK])]
    assert len(pulses) == PPQN and pulses[0] == 0 and pulses[1] == round(BEAT_NS_120 / PPQN)
    tempo.set_tempo(60, at_ns=BEAT_NS_120)
    second = out.due(BEAT_NS_120 + 1_000_000_000)
    assert len(second) == PPQN and second[1][0] - second[0][0] == round(1e9 / PPQN)
    out.stop(BEAT_NS_120 + 1_000_000_000)
    assert out.due(10**12) == [(BEAT_NS_120 + 1_000_000_000, bytes([STOP]))]  # no pulses after stop


def test_clock_in_follows_start_tempo_and_stop_from_raw_bytes():
    tempo = TempoClock(100)
    follow = MidiClockIn(tempo)
    t0, pulse_ns = 5_000_000, round(60e9 / 90 / PPQN)  # a sender at 90 BPM
    assert follow.feed(bytes([START]), t0 - 1000) == "start"
    for i in range(PPQN * 4 + 1):
        assert follow.feed(bytes([TIMING_CLOCK]), t0 + i * pulse_ns) == "tick"
    assert follow.tempo_bpm == pytest.approx(90, rel=1e-6)
    assert tempo.tempo_bpm == pytest.approx(90, rel=1e-6)
    assert tempo.beat_at(t0) == pytest.approx(0.0, abs=1e-6)  # the first pulse after Start is beat 0
    assert tempo.beat_at(t0 + PPQN * 4 * pulse_ns) == pytest.approx(4.0, abs=1e-6)
    assert follow.feed(bytes([STOP]), t0 + 10**9) == "stop" and not follow.running
    assert follow.feed(bytes([0x90, 60, 100]), t0) is None  # a note is not clock


def test_clock_in_reads_song_position_and_out_round_trips_into_in():
    tempo_out, tempo_in = TempoClock(132), TempoClock(80)
    out, follow = MidiClockOut(tempo_out), MidiClockIn(tempo_in)
    out.start(0)
    for at_ns, data in out.due(8 * round(60e9 / 132)):
        follow.feed(data, at_ns)
    assert follow.tempo_bpm == pytest.approx(132, rel=1e-4)
    assert tempo_in.beat_at(tempo_out.ns_at(7.5)) == pytest.approx(7.5, abs=1e-3)
    assert follow.feed(bytes([0xF2, 8, 0]), 0) == "position" and follow.pulses == 8 * 6
