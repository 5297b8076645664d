"""Offline renders run the engine's own loop on a fake clock: the notes a show plays, the same every time."""

import mido
import pytest

from realtime.cli import main
from realtime.clock import FakeClock, SystemClock
from realtime.engine.continuation import ContinuationSettings
from realtime.errors import InputError
from realtime.events import NoteSequence, read_midi, write_midi
from realtime.model.generator import build_generator
from realtime.offline import Duet, continue_file

MS = 1_000_000
# (onset ms, duration ms, pitch, velocity) at 100 bpm: the start of the engine tests' G-major phrase
PHRASE = [(0, 540, 67, 84), (600, 270, 69, 72), (900, 270, 71, 76), (1200, 540, 74, 92)]


def _duet(model, clock, seed=5):
    generator = build_generator(str(model), seed, temperature=0.9, top_p=0.92)
    settings = ContinuationSettings(tempo_bpm=100, phrase_end_ms=300, answer_notes=8, answer_beats=4)
    return Duet(generator, settings, clock)


def _phrase(notes=PHRASE, tempo_bpm=100.0):
    return NoteSequence.from_absolute([(float(o), float(d), p, v) for o, d, p, v in notes], "ms", tempo_bpm)


@pytest.mark.slow
def test_the_offline_answer_is_the_live_answer(shipped_model):
    live = _duet(shipped_model, SystemClock())
    live.generator.runner.warm_up()
    live.generator.reset()
    live_start = live.clock.now_ns() + 100 * MS
    live.perform(_phrase(), live_start)  # a player thread plays in real time; the engine runs its loop live
    offline = _duet(shipped_model, FakeClock())
    offline.perform(_phrase(), 100 * MS)

    def heard(duet, start_ns):
        return [((t - start_ns) / MS, m.pitch, m.velocity, m.channel) for t, m in duet.output.sent]

    live_sent, offline_sent = heard(live, live_start), heard(offline, 100 * MS)
    assert sum(v > 0 for _, _, v, _ in offline_sent) >= 4, "the engine answered"
    assert [s[1:] for s in live_sent] == [s[1:] for s in offline_sent], "the same notes, in the same order"
    late = [(a[0], b[0]) for a, b in zip(live_sent, offline_sent) if abs(a[0] - b[0]) > 20]
    assert not late, f"live (ms) vs offline (ms) more than 20 ms apart: {late}"
    assert live.output.held == set() and offline.output.held == set()


def test_continue_twice_with_one_seed_gives_byte_identical_midi(tmp_path, shipped_model):
    prompt = tmp_path / "prompt.mid"
    write_midi(_phrase().to_beats(), prompt)
    outs = []
    for name, seed in (("a.mid", "4"), ("b.mid", "4"), ("c.mid", "5")):
        assert main(["continue", "--prompt", str(prompt), "--out", str(tmp_path / name), "--seed", seed,
                     "--notes", "12", "--model", shipped_model.stem]) == 0
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2], "another seed, another continuation"
    combined = read_midi(tmp_path / "a.mid")
    assert len(combined.notes) == len(PHRASE) + 12


def test_continue_is_the_engine_answer_after_the_whole_prompt(tmp_path, shipped_model):
    """A rest inside the prompt longer than the phrase end does not start the answer; the answer is the
    engine's (its gap and loudness), the very notes a Duet on a fake clock plays."""
    soft = [(o, d, p, 40) for o, d, p, _ in PHRASE] + [(3000, 540, 71, 40), (3600, 540, 67, 40)]  # a 2-beat rest
    prompt = tmp_path / "soft.mid"
    write_midi(_phrase(soft).to_beats(), prompt)
    continue_file(str(prompt), str(tmp_path / "out.mid"), shipped_model.stem, notes=10, seed=2)
    written = read_midi(tmp_path / "out.mid")
    onsets = written.onsets()
    prompt_end = 3600 / 600 + 540 / 600  # beats
    answer = [(o, n) for o, n in zip(onsets, written.notes)][len(soft):]
    assert len(answer) == 10 and min(o for o, _ in answer) > prompt_end, "the answer follows the whole prompt"
    assert max(n.velocity for _, n in answer) <= 60, "at the prompt's loudness"
    # the same prompt through the engine by hand: the phrase end just longer than the prompt's rest
    generator = build_generator(shipped_model.stem, 2)
    settings = ContinuationSettings(tempo_bpm=100, phrase_end_beats=2.1 + 0.25, answer_notes=10, answer_beats=81)
    duet = Duet(generator, settings, FakeClock())
    duet.perform(read_midi(prompt), 0)
    by_hand = [(round(o * 100 / 60 * 480), p, v) for o, _, p, v in duet.answer(0)]
    assert by_hand == [(round(o * 480), n.pitch, n.velocity) for o, n in answer]


def test_continue_refuses_what_it_cannot_continue(tmp_path, shipped_model):
    empty = tmp_path / "empty.mid"
    mido.MidiFile().save(empty)
    with pytest.raises(InputError, match="no notes"):
        continue_file(str(empty), str(tmp_path / "out.mid"), shipped_model.stem)
    with pytest.raises(InputError, match="--notes"):
        continue_file(str(empty), str(tmp_path / "out.mid"), shipped_model.stem, notes=0)
