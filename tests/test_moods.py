"""Moods: the table users edit, its errors, and answers that move the way the table says (tempo, mode,
density, register, dynamics), offline, live on a fake clock (`/mood` landing on the next answer), from the
patch and the command line; and benchmarks/rhythm_mood.py's quick mode with its thresholds."""

from __future__ import annotations

import importlib.util
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from realtime.app import Overrides, apply_overrides
from realtime.clock import FakeClock
from realtime.engine.answershape import AnswerShape
from realtime.engine.continuation import ContinuationSettings
from realtime.errors import PatchError
from realtime.events import NoteSequence
from realtime.model.generator import build_generator
from realtime.model.sampling import Constraints, scale_pitch_classes
from realtime.moods import load_moods
from realtime.offline import Duet, continue_sequence, phrase_events
from realtime.patch import compile_patch, load_patch

ROOT = Path(__file__).resolve().parents[1]
MS = 1_000_000
PHRASE = NoteSequence.from_absolute([(i * 300.0, 250.0, p, 80) for i, p in enumerate([67, 71, 74, 72, 71, 69, 67])],
                                    "ms", 100.0)  # G major
G = 7


def _measure(mood, seed: int = 0) -> dict:
    generator = build_generator("bach-folk-lstm.int8", seed, constraints=Constraints(scale_pitch_classes(G, mood.mode)))
    answer = continue_sequence(PHRASE, generator, 40, AnswerShape(None, mood, key_tonic=G))
    onsets = np.array([a[0] for a in answer])
    return {"seconds_per_note": float(np.mean(np.diff(onsets))), "pitch": float(np.mean([a[2] for a in answer])),
            "velocity": float(np.mean([a[3] for a in answer])),
            "pitch_classes": {a[2] % 12 for a in answer}}


def test_moods_move_the_answer_the_way_the_table_says():
    moods = load_moods()
    calm, tense, cheerful, sad = (_measure(moods[n]) for n in ("calm", "tense", "cheerful", "sad"))
    # calm: 66 BPM, 1 note a beat; tense: 132 BPM, 4 a beat -> a note every ~0.9 s against every ~0.11 s
    assert calm["seconds_per_note"] > 4 * tense["seconds_per_note"]
    assert cheerful["pitch"] > calm["pitch"] + 5 and calm["pitch"] > sad["pitch"] + 3  # registers 74, 63, 56
    assert tense["velocity"] > cheerful["velocity"] > calm["velocity"] > sad["velocity"]  # 100, 92, 52, 48
    minor_third, major_third = (G + 3) % 12, (G + 4) % 12
    assert minor_third in sad["pitch_classes"] | tense["pitch_classes"]
    assert major_third not in sad["pitch_classes"] | tense["pitch_classes"]
    assert minor_third not in calm["pitch_classes"] | cheerful["pitch_classes"]


def test_the_table_refuses_bad_moods_in_one_line(tmp_path):
    for text, says in (("[x]\nmode = \"lydian\"", "mode must be one of"), ("[x]\ndensity = 0", "more than 0"),
                       ("[x]\nregister = 200", "register must lie in 24-96"), ("[x]\nloud = 1", "unknown key 'loud'"),
                       ("[x", "TOML syntax")):
        (tmp_path / "m.toml").write_text(text)
        with pytest.raises(PatchError, match=says) as err:
            load_moods(tmp_path / "m.toml")
        assert str(err.value).startswith(str(tmp_path / "m.toml")) and "\n" not in str(err.value)


def test_patch_keys_the_users_table_and_the_command_line(tmp_path):
    (tmp_path / "mine.toml").write_text("[dreamy]\ntempo_bpm = 50\nmode = \"dorian\"\nregister = 70\n")
    (tmp_path / "p.toml").write_text("[engine]\nmood = \"dreamy\"\nmoods = \"mine.toml\"\n")
    settings = compile_patch(load_patch(tmp_path / "p.toml")).continuation
    assert settings.mood.name == "dreamy" and settings.mood.mode == "dorian" and len(settings.moods) == 1
    (tmp_path / "q.toml").write_text("[engine]\nmood = \"sad\"\n")  # the shipped table by default
    assert compile_patch(load_patch(tmp_path / "q.toml")).continuation.mood.tempo_bpm == 58
    patch = apply_overrides(load_patch(tmp_path / "q.toml"), Overrides(mood="tense"))
    assert compile_patch(patch).continuation.mood.name == "tense"
    with pytest.raises(PatchError, match=r"^--mood: unknown mood 'grumpy'; known: calm, tense, cheerful"):
        apply_overrides(load_patch(tmp_path / "q.toml"), Overrides(mood="grumpy"))
    (tmp_path / "r.toml").write_text("[engine]\nmood = \"calm\"\nmoods = \"mine.toml\"\n")
    with pytest.raises(PatchError, match=r"r.toml: \[engine\] mood: unknown mood 'calm'; known: dreamy$"):
        load_patch(tmp_path / "r.toml")


def test_slash_mood_lands_on_the_next_answer_not_the_one_playing():
    moods = load_moods()
    generator = build_generator("bach-folk-lstm.int8", 2)
    settings = ContinuationSettings(tempo_bpm=100, phrase_end_ms=400, answer_notes=12, answer_beats=40)
    duet = Duet(generator, settings, FakeClock(), AnswerShape(moods=moods, key_tonic=G))

    def play(start_ns):
        events = phrase_events(PHRASE, start_ns)
        for at_ns, pitch, velocity in events:
            duet.clock.call_at(at_ns, partial(duet.keyboard.play, pitch, velocity))
        return events[-1][0]

    def velocities(after_ns, before_ns):
        return [m.velocity for t, m in duet.output.sent if m.is_on and after_ns < t < before_ns]

    first = play(0)
    duet.engine.loop(first + 500 * MS)  # the answer has begun
    duet.mode.request_shape("mood", "sad")
    duet.mode.request_shape("mood", "grumpy")
    assert duet.mode.last_error.startswith("/mood: unknown mood 'grumpy'; known: calm, tense")
    assert duet.mode.last_error.endswith("the answer keeps its mood") and "\n" not in duet.mode.last_error
    duet.engine.loop(first + 20_000 * MS)
    plain = velocities(first, first + 20_000 * MS)
    assert duet.mode.shape.mood is None and plain and np.mean(plain) > 60  # the phrase's loudness, 80
    second = play(first + 21_000 * MS)
    duet.engine.loop(second + 40_000 * MS)
    sad = velocities(second, second + 40_000 * MS)
    assert duet.mode.shape.mood.name == "sad" and abs(np.mean(sad) - 48) < 8
    assert generator.constraints.pitch_classes == scale_pitch_classes(G, "minor")
    duet.mode.request_shape("mood", "off")
    third = play(second + 41_000 * MS)
    duet.engine.loop(third + 20_000 * MS)
    assert duet.mode.shape.mood is None and generator.constraints.pitch_classes is None  # the patch's own again
    assert not generator._lean_pitch.any() and not generator._lean_ioi.any()


def test_the_benchmark_quick_mode_meets_its_thresholds(tmp_path):
    pytest.importorskip("music21")
    spec = importlib.util.spec_from_file_location("bench_rhythm_mood", ROOT / "benchmarks" / "rhythm_mood.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.main(["--quick", "--json", str(tmp_path / "r.json")])
    assert (tmp_path / "r.json").exists() and results["prompts"] == 4
    for pattern, row in results["rhythm"].items():
        assert row["on_pattern"] >= 0.9 and row["in_piece_key"] >= 0.8, (pattern, row)
    for quantity, row in results["direction_agreement"].items():
        assert row["pairs"] >= 10 and row["agreement"] >= 0.8, (quantity, row)
    assert set(results["moods"]) >= {"calm", "tense", "cheerful", "romantic", "sad"}
