"""The embedded default runs end to end in real time and its files agree with each other."""

import wave

import mido
import numpy as np
import pytest

from realtime.demo import run_demo
from realtime.io.synth import detect_onsets


def _midi_onsets_s(path):
    onsets, t = [], 0.0
    for message in mido.MidiFile(path):  # iterating a file yields times in seconds, tempo applied
        t += message.time
        if message.type == "note_on" and message.velocity > 0:
            onsets.append(t)
    merged = []
    for onset in sorted(onsets):  # a chord is one onset
        if not merged or onset - merged[-1] > 0.03:
            merged.append(onset)
    return merged


@pytest.mark.slow
def test_demo_writes_audio_that_lines_up_with_its_midi(tmp_path, shipped_model):
    figures = run_demo(out_dir=str(tmp_path), model=shipped_model.stem, seed=7, play=False)
    assert figures["answer_notes"] >= 4 and figures["held_after_stop"] == 0
    assert len(figures["answer_latency_ns"]) == 1 and figures["answer_latency_ns"][0] < 50_000_000
    with wave.open(str(tmp_path / "demo.wav")) as wav:
        rate = wav.getframerate()
        audio = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    assert np.abs(audio).max() > 0.1, "the WAV is not silent"
    midi_onsets = _midi_onsets_s(tmp_path / "demo.mid")
    heard = detect_onsets(audio, rate)
    assert len(midi_onsets) >= 15
    missed = [t for t in midi_onsets if min(abs(np.array(heard) - t)) > 0.03]
    extra = [t for t in heard if min(abs(np.array(midi_onsets) - t)) > 0.03]
    assert len(missed) <= len(midi_onsets) // 10, f"MIDI onsets with no loud start in the WAV: {missed}"
    assert len(extra) <= len(heard) // 10, f"loud starts in the WAV with no MIDI onset: {extra}"
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
