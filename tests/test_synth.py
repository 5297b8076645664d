"""The built-in synth, WAV output, audio fallback, onset detection and the piano roll."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from realtime.io.synth import detect_onsets, onset_envelope, play, render, write_wav
from realtime.viz import piano_roll

SR = 22050

# Six onsets, 150-600 ms apart: two chords, low and high pitches, soft and loud notes.
PHRASE: list[tuple[float, float, int, int]] = [
    (0.10, 0.25, 60, 90),
    (0.40, 0.12, 48, 110),  # chord C3-G3-E4
    (0.40, 0.12, 55, 100),
    (0.40, 0.12, 64, 95),
    (0.55, 0.50, 72, 60),  # soft, long
    (1.15, 0.30, 67, 120),
    (1.50, 0.20, 57, 80),  # chord A3-C#4
    (1.50, 0.20, 61, 75),
    (1.80, 0.40, 76, 105),
]
ONSETS = sorted({onset for onset, _, _, _ in PHRASE})


def test_empty_render_is_silence_of_tail_length() -> None:
    out = render([], sample_rate=SR, tail_s=0.5)
    assert out.dtype == np.float32
    assert out.shape == (round(0.5 * SR),)
    assert not np.any(out)


def test_render_is_audible_float32_within_range() -> None:
    out = render(PHRASE, sample_rate=SR, tail_s=0.3)
    assert out.dtype == np.float32
    assert out.ndim == 1
    assert len(out) == round((1.80 + 0.40 + 0.3) * SR)
    assert np.max(np.abs(out)) <= 1.0
    assert np.sqrt(np.mean(out**2)) > 0.01
    assert not np.any(out[: int(0.09 * SR)])  # nothing before the first onset


def test_render_never_clips_a_dense_loud_chord() -> None:
    chord = [(0.0, 0.5, p, 127) for p in (36, 43, 48, 52, 55, 60, 64, 67, 72, 76)]
    out = render(chord, sample_rate=SR)
    assert np.max(np.abs(out)) == pytest.approx(0.8, abs=1e-3)


def test_louder_velocity_renders_louder() -> None:
    soft = render([(0.0, 0.3, 60, 30)], sample_rate=SR)
    loud = render([(0.0, 0.3, 60, 120)], sample_rate=SR)
    assert np.max(np.abs(loud)) > 3.0 * np.max(np.abs(soft))


def test_wav_round_trip(tmp_path: Path) -> None:
    samples = render(PHRASE[:3], sample_rate=SR)
    path = tmp_path / "nested" / "dir" / "phrase.wav"
    write_wav(path, samples, SR)
    with wave.open(str(path), "rb") as wav:
        assert wav.getframerate() == SR
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        assert wav.getnframes() == len(samples)
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert np.any(data != 0)
    np.testing.assert_allclose(data / 32767.0, samples, atol=1.0 / 32767.0)


def test_detect_onsets_matches_midi_onsets() -> None:
    found = detect_onsets(render(PHRASE, sample_rate=SR), SR)
    assert len(found) == len(ONSETS), f"expected {ONSETS}, found {found}"
    for want, got in zip(ONSETS, found):
        assert abs(got - want) <= 0.015, f"expected {ONSETS}, found {found}"


def test_detect_onsets_on_silence_and_a_single_note() -> None:
    assert detect_onsets(np.zeros(SR, dtype=np.float32), SR) == []
    found = detect_onsets(render([(0.3, 0.4, 69, 100)], sample_rate=SR), SR)
    assert len(found) == 1 and abs(found[0] - 0.3) <= 0.015


def test_onset_envelope_is_loud_where_notes_sound() -> None:
    times, rms = onset_envelope(render(PHRASE, sample_rate=SR), SR, hop_ms=5.0)
    assert times.shape == rms.shape
    assert np.allclose(np.diff(times), 0.005, atol=1e-4)
    top = rms.max()
    for onset in ONSETS:  # loud just after every onset, quiet before the first
        assert rms[np.searchsorted(times, onset + 0.02)] > 0.1 * top
    assert rms[np.searchsorted(times, 0.05)] < 1e-6


def test_play_reports_instead_of_raising() -> None:
    reason = play(render([(0.0, 0.05, 60, 80)], sample_rate=SR, tail_s=0.05), SR)
    assert reason is None or (isinstance(reason, str) and reason.startswith("audio off") and "\n" not in reason)


def test_piano_roll_writes_png(tmp_path: Path) -> None:
    path = tmp_path / "plots" / "roll.png"
    answer = [(2.4 + 0.25 * i, 0.2, 60 + 2 * i, 40 + 15 * i) for i in range(6)]
    piano_roll(path, [("prompt", PHRASE, "tab:blue"), ("answer", answer, "tab:orange")], title="call and answer")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000


def test_piano_roll_handles_empty_layers(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    piano_roll(path, [("prompt", [], "tab:blue")])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
