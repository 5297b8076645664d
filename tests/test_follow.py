"""The duet follows your register: a model with controls hears the phrase's register, density, dynamics and key.

realtime/engine/phrasecontrols.py measures the phrase the duet answers and writes the control row of a
conditioned model once per answer; these tests play phrases into the real duet offline (a fake clock)
with the shipped game-lstm and check what it was told, that the first answer note's prediction was
redone under it, that an unconditioned model is untouched, the patch keys, and benchmarks/follow.py.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from jackclients import Running
from pythonosc.udp_client import SimpleUDPClient

from realtime.clock import FakeClock
from realtime.errors import PatchError
from realtime.events import NoteSequence
from realtime.listen import Listener
from realtime.model import controls as ctl
from realtime.model.generator import ModelRunner, build_generator
from realtime.model.tokens import Token, duration_bucket, ioi_bucket, velocity_bucket
from realtime.offline import Duet
from realtime.patch import compile_patch, parse_patch
from realtime.settings import ContinuationSettings, ListenSettings

CONDITIONED = "game-lstm.int8"
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _phrase(pitches, velocity=80, beats=0.5) -> NoteSequence:
    return NoteSequence.from_absolute([(i * beats, beats, p, velocity) for i, p in enumerate(pitches)], "beats", 100)


LOW, HIGH = [38, 41, 43, 45, 43, 41, 40, 38], [76, 79, 81, 83, 81, 79, 78, 76]  # around 41 and 79


def _two_phrases(first, second, velocities=(90, 90)) -> NoteSequence:
    """Two phrases of notes 150 ms apart, the second 6 s after the first began (each gets its answer)."""
    notes = [(i * 150.0, 150.0, p, velocities[0]) for i, p in enumerate(first)]
    notes += [(6000 + i * 150.0, 150.0, p, velocities[1]) for i, p in enumerate(second)]
    return NoteSequence.from_absolute(notes, "ms", 100.0)


def _duet(settings=None, model=CONDITIONED, seed=0) -> Duet:
    return Duet(build_generator(model, seed), settings or ContinuationSettings(tempo_bpm=100), FakeClock())


def _answer(pitches, velocity=80, settings=None, beats=0.5):
    duet = _duet(settings)
    duet.perform(_phrase(pitches, velocity, beats), 0)
    return duet, duet.answer(0)


def test_a_low_phrase_sets_a_low_register_and_a_high_one_a_high_register():
    low, low_answer = _answer(LOW)
    high, high_answer = _answer(HIGH)
    register = ctl.INDEX["register"]
    assert low.mode.follow.applied["register"] == pytest.approx(41.125)
    assert low.generator.runner.controls[0, register] == pytest.approx(41.125)
    assert high.mode.follow.applied["register"] == pytest.approx(79.125)
    assert np.mean([p for *_, p, _ in low_answer]) + 20 < np.mean([p for *_, p, _ in high_answer])


def test_density_dynamics_and_key_come_from_the_phrase():
    duet, answer = _answer([60, 62, 64, 65, 67, 65, 64, 62, 60], velocity=40, beats=0.25)  # sixteenths, quiet, C
    applied, row = duet.mode.follow.applied, duet.generator.runner.controls[0]
    assert applied["density"] == pytest.approx(4.0)
    assert applied["polyphony"] == pytest.approx(1.0)
    assert applied["dynamics"] == pytest.approx(40.0)
    key = row[ctl.PITCH_CLASS_SLICE]
    assert key.sum() == pytest.approx(1.0, abs=1e-5) and key[0] == key.max() and key[1] == 0.0  # C major's profile
    # the model plays the loudness it heard; the duet does not scale it by the phrase's loudness again
    assert np.mean([v for *_, v in answer]) < 64


def test_the_register_key_overrides_the_phrase():
    duet, _ = _answer([40, 43, 45, 47], settings=ContinuationSettings(tempo_bpm=100, register=80.0))
    assert duet.mode.follow.applied["register"] == 80.0


def test_following_off_leaves_the_controls_at_the_card_defaults():
    off = ContinuationSettings(tempo_bpm=100, follow_register=False, follow_density=False, follow_dynamics=False,
                               follow_key=False)
    duet, _ = _answer([40, 43, 45, 47], settings=off)
    assert not duet.mode.follow.active and duet.mode.follow.applied == {}
    runner = duet.generator.runner
    np.testing.assert_array_equal(runner.controls[0], np.float32([spec["default"] for spec in runner.control_specs]))


def test_a_model_without_controls_is_untouched(shipped_model):
    duet = _duet(model=shipped_model)
    duet.perform(_phrase([40, 43, 45, 47]), 0)
    assert duet.generator.runner.controls is None and not duet.mode.follow.active
    assert duet.answer(0)


def test_the_last_phrase_note_is_heard_again_under_the_new_controls():
    """The first answer note is drawn from the prediction made after the last phrase note: it must follow."""
    pitches = [40, 43, 45, 47]
    duet = _duet()
    duet.perform(_phrase(pitches), 0)
    follow, runner = duet.mode.follow, duet.generator.runner
    last = Token(47, ioi_bucket(0.5), duration_bucket(0.5), velocity_bucket(80))  # what the duet made of it
    reference = ModelRunner(CONDITIONED)
    reference.reset(follow._saved)  # the state before the last phrase note
    reference.controls[:] = runner.controls
    expected = reference.step(last.pitch, last.ioi, last.duration, last.velocity).copy()
    drawn_from = duet.mode._before_answer[1]  # the logits the first answer note was drawn from
    np.testing.assert_allclose(drawn_from, expected, atol=1e-5)
    reference.reset(follow._saved)
    reference.controls[:] = [spec["default"] for spec in reference.control_specs]
    stale = reference.step(last.pitch, last.ioi, last.duration, last.velocity)
    assert np.abs(drawn_from - stale).max() > 0.1  # the redone step is what changed the first note's odds


def test_patch_keys():
    patch = parse_patch({"continuation": {"follow_register": False, "register": 50}})
    settings = compile_patch(patch).continuation
    assert settings.follow_register is False and settings.register == 50
    assert compile_patch(parse_patch({})).continuation.follow_density is True
    with pytest.raises(PatchError, match=r"duet.toml.*register must be between 24 and 96"):
        parse_patch({"continuation": {"register": 120}}, "duet.toml")
    with pytest.raises(PatchError, match="follow_key must be true or false"):
        parse_patch({"continuation": {"follow_key": "yes"}}, "duet.toml")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_quick_the_followed_duet_fits_more_often(tmp_path):
    follow = _script("follow")
    base = follow.main(["--quick", "--model", "bach-folk-lstm.int8", "--json", str(tmp_path / "base.json")])
    fixed = follow.main(["--quick", "--model", CONDITIONED, "--json", str(tmp_path / "fixed.json")])
    saved = json.loads((tmp_path / "fixed.json").read_text())
    assert set(saved["table"]) == {*map(str, follow.REGISTERS), "all"} and saved["follow"] is True
    assert base["control_spearman"] == {} and not base["follow"]
    # measured here: all three 25% -> 63%, register 37% -> 75%; Spearman density 0.98, dynamics 0.98
    assert fixed["table"]["all"]["all"] > base["table"]["all"]["all"] + 0.15
    assert fixed["table"]["all"]["register"] > 0.5
    assert fixed["control_spearman"]["density"] > 0.7 and fixed["control_spearman"]["dynamics"] > 0.7
    reference = saved["the_pieces_own_continuation"]
    assert reference["runs"] > 10 and 0.5 < reference["all"] < 1.0, "real music, judged alike, mostly fits"


def test_the_reference_is_judged_as_an_answer_is():
    """The pieces' own continuations go through the same judge: a phrase answered by itself fits, the same
    notes a tritone up fit neither scale nor register; and the benchmark transposes prompt and continuation
    together (a reference judged against a transposed prompt would fail on scale alone)."""
    follow = _script("follow")
    line = [(i * 0.5, 0.5, p) for i, p in enumerate((62, 64, 66, 67, 69, 71, 73, 74, 73, 71, 69, 67))]
    phrase = follow.prompt(line, 60, 120)
    shift = follow.shift_to(line, 60)
    itself = [(on * 0.5, d * 0.5, p + shift, 80) for on, d, p in line]  # seconds at 120 BPM, moved as the prompt
    assert follow.judge(phrase, itself)["all"]
    tritone = follow.judge(phrase, [(on, d, p + 6, v) for on, d, p, v in itself])
    assert not tritone["scale"] and not tritone["register"]
    reference = follow.the_pieces_own(follow.long_pieces("stage-lstm.int8", quick=True))
    assert reference["runs"] > 10 and reference["scale"] > 0.5


def test_the_critics_fragments_hear_the_phrase_controls_too():
    from realtime.model.critic import attach
    from realtime.stagesettings import CriticSettings
    generator = build_generator(CONDITIONED, 0)
    attach(generator, CriticSettings(candidates=4))
    duet = Duet(generator, ContinuationSettings(tempo_bpm=100), FakeClock())
    duet.perform(_phrase([38, 41, 43, 45, 43, 41]), 0)
    assert generator.critic.proposals > 0
    np.testing.assert_array_equal(generator.critic.runner.controls[1], generator.runner.controls[0])
    assert generator.critic.runner.controls[0, ctl.INDEX["register"]] == pytest.approx(41.833, abs=1e-3)


@pytest.mark.parametrize("model", ["stage-lstm.int8", CONDITIONED])
def test_fresh_phrases_answers_a_low_phrase_after_a_high_one_from_the_low_phrase_alone(model):
    """fresh_phrases: the model hears each phrase from its first note. Without it, the stage model's state
    after a high phrase and its answer outweighed the low phrase's register (measured: 70 against 39, with the
    model shipped before 2026-12-07; the one that hears a key profile answers 43.5 without, 40.4 with it)."""
    means = {}
    for fresh in (False, True):
        settings = ContinuationSettings(tempo_bpm=100, phrase_end_ms=600, answer_notes=8, answer_beats=4,
                                        fresh_phrases=fresh)
        duet = Duet(build_generator(model, 0), settings, FakeClock())
        duet.perform(_two_phrases(HIGH, LOW), 0, until_ns=12_000_000_000)
        answers = [(at, p) for at, _, p, _ in duet.answer(0)]
        second = [p for at, p in answers if at > 6.0]
        assert len(second) == 8 and np.mean([p for at, p in answers if at < 6.0]) > 69, (fresh, answers)
        means[fresh] = float(np.mean(second))
    assert means[True] < 47, means  # the low phrase is around 41


def test_realtime_run_with_the_shipped_duet_patch_answers_a_low_phrase_low_and_a_high_one_high(tmp_path):
    """`realtime run patches/duet.toml` as a user runs it (MIDI off, notes over OSC on loopback, recorded)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = (Path(__file__).resolve().parents[1] / "patches" / "duet.toml").read_text()
    for old, new in (("port = 9000", f"port = {port}"), ("[midi]\n", "[midi]\nenabled = false\n"),
                     ("answer_notes = 24", "answer_notes = 8"), ("answer_beats = 12", "answer_beats = 4")):
        assert old in text
        text = text.replace(old, new)
    patch = tmp_path / "duet.toml"
    patch.write_text(text)
    player, show = SimpleUDPClient("127.0.0.1", port), tmp_path / "show"
    with Running(patch, "--record", str(show)) as run:
        time.sleep(4.0)  # started (the model warmed) before the first phrase
        for phrase in (LOW, HIGH):
            for pitch in phrase:
                player.send_message("/note/on", [pitch, 90])
                time.sleep(0.15)
                player.send_message("/note/off", [pitch])
            time.sleep(4.0)  # the phrase end (600 ms) and an answer of 4 beats at 100 BPM
    assert run.returncode == 0, run.err
    sent = [json.loads(line)["sent"] for line in (show / "session.events").read_text().splitlines() if '"sent"' in line]
    ons = [(at, pitch) for at, _, pitch, velocity, _ in sent if velocity > 0]
    assert len(ons) >= 6, run.err
    gaps = np.diff([at for at, _ in ons])
    split = int(np.argmax(gaps)) + 1  # the second phrase was played between the two answers
    low, high = np.mean([p for _, p in ons[:split]]), np.mean([p for _, p in ons[split:]])
    # measured with the stage-lstm.int8 shipped before 2026-12-07: 36-38 and 77-80 over seeds 0-3 (phrases around
    # 41 and 79); game-lstm.int8 answered 42.5 and 74.4, bach-folk-lstm.int8 the low one at 52.8
    assert low < 49 and high > 69, (low, high, [p for _, p in ons])


def test_each_phrase_note_is_heard_under_the_phrase_so_far_not_the_last_answer():
    """A high phrase after a low answer: every note of it is heard with the register, density and
    dynamics of the phrase so far in the control row, so the model's state is built under the controls
    its answer will get. Before, the row held the low answer's controls until the answer began."""
    settings = ContinuationSettings(tempo_bpm=100, phrase_end_ms=600, answer_notes=8, answer_beats=4)
    duet = Duet(build_generator(CONDITIONED, 0), settings, FakeClock())
    mode, row = duet.mode, duet.generator.runner.controls[0]
    heard, player = [], []
    before_feed, timed_feed = mode.follow.before_feed, mode._timed_feed

    def spy_before(token, *args, **kwargs):
        player.append(token.pitch)
        before_feed(token, *args, **kwargs)

    def spy_feed(token):
        if player and player[-1] == token.pitch:
            heard.append((token.pitch, float(row[ctl.INDEX["register"]]), float(row[ctl.INDEX["dynamics"]])))
            player.clear()
        timed_feed(token)

    mode.follow.before_feed, mode._timed_feed = spy_before, spy_feed
    duet.perform(_two_phrases(LOW, HIGH, (50, 100)), 0, until_ns=12_000_000_000)
    assert [p for p, *_ in heard] == LOW + HIGH
    for phrase, offset, velocity in ((LOW, 0, 50), (HIGH, len(LOW), 100)):
        for k in range(len(phrase)):
            pitch, register, dynamics = heard[offset + k]
            assert register == pytest.approx(np.mean(phrase[:k + 1]), abs=1e-4), (pitch, k, heard)
            assert dynamics == pytest.approx(velocity, abs=1e-4)


@pytest.mark.parametrize("model", ["stage-lstm.int8", CONDITIONED])
def test_a_fresh_phrase_starts_the_model_under_its_own_first_note(model):
    """fresh_phrases: the start token of a new phrase is stepped under that phrase's first note's controls,
    not the last answer's; and the stage model then answers a high phrase after a low one high from its
    first note (measured before: 58-63 for the first notes against a phrase around 79, an octave low,
    with the player's tempo tracked as a session tracks it)."""
    settings = ContinuationSettings(tempo_bpm=100, phrase_end_ms=600, answer_notes=8, answer_beats=4,
                                    fresh_phrases=True)
    clock = FakeClock()
    duet = Duet(build_generator(model, 1), settings, clock, listener=Listener(ListenSettings(), 100))
    runner = duet.generator.runner
    starts, start = [], runner.start

    def spy_start():
        starts.append((clock.now_ns(), float(runner.controls[0, ctl.INDEX["register"]])))
        return start()

    runner.start = spy_start
    duet.perform(_two_phrases(LOW, HIGH), 0, until_ns=12_000_000_000)
    second = [(at, p) for at, _, p, _ in duet.answer(0) if at > 6.0]
    heard_high = [register for at, register in starts if 6_000_000_000 <= at < 8_000_000_000]
    assert heard_high and min(heard_high) >= 76, starts
    assert len(second) == 8 and min(p for _, p in second[:3]) >= 69, second
