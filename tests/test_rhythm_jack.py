"""Rhythm taps as a user plays them: `realtime run` on JACK MIDI, a foreign JACK keyboard playing a phrase and
then tapping a pattern on note 37, channel 10 (the patch's `rhythm_tap_note`), and a receiving JACK client
hearing the answer by frame: its onsets follow the tapped pattern (within 1/16 beat), its pitches in key."""

from __future__ import annotations

import time

import numpy as np

from jackclients import Keyboard, Receiver, Running, wait_for

PATCH = """
[engine]
tempo_bpm = 120
[model]
key = "C major"
[continuation]
phrase_end_ms = 700
answer_notes = 9
answer_beats = 40
follow_tempo = false
rhythm_tap_note = 37
rhythm_tap_channel = 10
[midi]
backend = "jack"
[osc]
enabled = false
"""
BEAT_S = 0.5
TAPS_S = (0.0, 0.25, 0.5, 1.0)  # gaps of 1/2, 1/2 and 1 beat: notes at 0, 0.5, 1 beat, looped every 2


def test_tapped_pattern_times_the_answer(jack256, tmp_path) -> None:
    patch = tmp_path / "taps.toml"
    patch.write_text(PATCH)
    keys, ears = Keyboard("tapper"), Receiver("ears")
    try:
        with Running(patch) as run:
            ears.listen_to("realtime-out")
            keys.play_into("realtime-in")
            keys.phrase([60, 64, 67, 65, 64], gap_s=0.15)
            start = time.monotonic()
            for t in TAPS_S:
                time.sleep(max(0.0, start + t - time.monotonic()))
                keys.note(37, 100, channel=9)
                time.sleep(0.04)
                keys.note(37, 0, channel=9)
            assert wait_for(lambda: len(ears.note_ons()) >= 9, timeout_s=15), ears.heard()
            time.sleep(0.3)
        assert run.returncode == 0, run.err[-400:]
        ons = [(t, m) for t, m in ears.messages if m[0] & 0xF0 == 0x90 and m[2] > 0]
    finally:
        keys.close()
        ears.close()
    times = np.array([t for t, _ in ons[:9]])
    beats = (times - times[0]) / BEAT_S
    expected = np.array([2 * (k // 3) + (0.0, 0.5, 1.0)[k % 3] for k in range(9)])
    on_pattern = np.abs(beats - expected) <= 1 / 16
    assert on_pattern.mean() >= 0.9, list(np.round(beats, 3))
    assert all(m[1] % 12 in (0, 2, 4, 5, 7, 9, 11) for _, m in ons), [m[1] for _, m in ons]
    assert all(m[0] & 0x0F == 0 for _, m in ons)  # the answer's channel; the taps were never echoed
