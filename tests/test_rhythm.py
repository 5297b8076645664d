"""Rhythm prompts: patterns parsed from text, files and taps; the duet's answer takes the pattern's onsets
and durations while the model chooses the pitches (offline `realtime continue --rhythm`, and live on a fake
clock: taps on the patch's note, `/rhythm` landing on the next answer)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from realtime.cli import main
from realtime.clock import FakeClock
from realtime.engine.answershape import AnswerShape
from realtime.engine.continuation import ContinuationSettings
from realtime.errors import InputError
from realtime.events import NoteSequence, read_midi, write_midi
from realtime.model.generator import build_generator
from realtime.model.sampling import Constraints, key_pitch_classes
from realtime.offline import Duet, continue_sequence, phrase_events
from realtime.rhythm import from_taps, parse_rhythm

MS = 1_000_000
C_MAJOR = key_pitch_classes("C major")
PHRASE = NoteSequence.from_absolute([(i * 300.0, 250.0, p, 80) for i, p in enumerate([60, 64, 67, 65, 64, 62, 60])],
                                    "ms", 120.0)


def test_grid_durations_and_errors():
    r = parse_rhythm("x.x.|xx-x")
    assert r.onsets == (0.0, 0.5, 1.0, 1.25, 1.75) and r.length_beats == 2.0
    assert r.durations == (0.25, 0.25, 0.25, 0.5, 0.25)  # "-" holds the note before it
    assert [r.onset_beats(k) for k in (5, 6)] == [2.0, 2.5]  # looped
    lead = parse_rhythm("..x.x.")  # a leading rest becomes the gap that closes the loop
    assert lead.onsets == (0.0, 0.5) and lead.gap_beats(0) == 1.0
    d = parse_rhythm("1 1/2 0.5 2")
    assert d.onsets == (0.0, 1.0, 1.5, 2.0) and d.length_beats == 4.0
    for bad, says in (("....", "no note"), ("0 1", "outside"), ("a.x", "give a .mid file"), ("gone.mid", "no such")):
        with pytest.raises(InputError, match=says):
            parse_rhythm(bad)


def test_a_midi_file_and_taps(tmp_path):
    path = tmp_path / "r.mid"  # a chord counts once; the loop is a whole bar
    write_midi(NoteSequence.from_absolute([(0.0, 0.5, 60, 90), (0.0, 1.0, 64, 90), (1.5, 0.5, 62, 90),
                                           (2.0, 1.0, 60, 90)], "beats", 120.0), path)
    r = parse_rhythm(str(path))
    assert r.onsets == (0.0, 1.5, 2.0) and r.durations == (1.0, 0.5, 1.0) and r.length_beats == 4.0
    (tmp_path / "junk.mid").write_bytes(b"not midi")
    with pytest.raises(InputError, match="junk.mid"):
        parse_rhythm(str(tmp_path / "junk.mid"))
    beat = 500 * MS
    taps = from_taps([0, beat // 2 + 7 * MS, beat - 9 * MS, 2 * beat], beat)  # a hand's few ms off the grid
    assert taps.onsets == (0.0, 0.5, 1.0) and taps.length_beats == 2.0
    assert from_taps([0], beat) is None


@pytest.mark.parametrize("pattern", ["x.x.xx.x", "1 0.5 0.5 1", "x--.x.x.x-x."])
def test_the_answer_follows_the_pattern_and_the_key(pattern):
    rhythm = parse_rhythm(pattern)
    generator = build_generator("bach-folk-lstm.int8", 3, constraints=Constraints(C_MAJOR))
    answer = continue_sequence(PHRASE, generator, 24, AnswerShape(rhythm))
    beats_per_s = PHRASE.tempo_bpm / 60
    onsets = (np.array([a[0] for a in answer]) - answer[0][0]) * beats_per_s
    expected = np.array([rhythm.onset_beats(k) for k in range(len(answer))])
    assert len(answer) == 24
    assert np.mean(np.abs(onsets - expected) <= 1 / 16) >= 0.9  # the judged figure; in fact all, exactly
    assert np.abs(onsets - expected).max() < 1e-6
    durations = np.array([a[1] for a in answer]) * beats_per_s
    assert np.allclose(durations, [rhythm.duration_beats(k) for k in range(len(answer))], atol=1e-6)
    assert all(a[2] % 12 in C_MAJOR for a in answer)
    assert len({a[2] for a in answer}) > 3  # the pitches are the model's, not one note repeated


def _live(shape: AnswerShape, seed: int = 1) -> Duet:
    generator = build_generator("bach-folk-lstm.int8", seed, constraints=Constraints(C_MAJOR))
    settings = ContinuationSettings(tempo_bpm=120, phrase_end_ms=700, answer_notes=10, answer_beats=40)
    return Duet(generator, settings, FakeClock(), shape)


def _play(duet: Duet, start_ns: int, taps_ms=()) -> int:
    """The phrase from start_ns, then taps (ms after its last note-off) on note 37, channel 10; returns the end."""
    events = phrase_events(PHRASE, start_ns)
    for at_ns, pitch, velocity in events:
        duet.clock.call_at(at_ns, partial(duet.keyboard.play, pitch, velocity))
    end = events[-1][0]
    for t in taps_ms:
        duet.clock.call_at(end + t * MS, partial(duet.keyboard.play, 37, 100, 9))
        duet.clock.call_at(end + (t + 50) * MS, partial(duet.keyboard.play, 37, 0, 9))
    return end + (max(taps_ms) + 50) * MS if taps_ms else end


def _answer_onsets(duet: Duet, after_ns: int) -> list[float]:
    """Beats (at 120 BPM) of the answer's note-ons after a moment, from its first."""
    ons = [t for t, m in duet.output.sent if m.is_on and t > after_ns]
    return [(t - ons[0]) / (500 * MS) for t in ons]


def test_live_taps_set_the_pattern_of_the_next_answer_and_are_not_heard_as_the_phrase():
    duet = _live(AnswerShape(tap_note=37, tap_channel=9))
    end = _play(duet, 0, taps_ms=(100, 350, 600, 1100))  # gaps of 1/2, 1/2, 1 beat: notes at 0, 0.5, 1; loop 2
    duet.engine.loop(end + 8_000 * MS)
    onsets = _answer_onsets(duet, end)
    assert len(onsets) == 10 and duet.mode.shape.taps_taken == 1
    expected = [2 * (k // 3) + (0.0, 0.5, 1.0)[k % 3] for k in range(10)]
    assert np.allclose(onsets, expected, atol=1e-6)
    assert 37 not in duet.mode._heard_pitches  # a tap is no note of the phrase
    assert all(m.pitch % 12 in C_MAJOR for _, m in duet.output.sent if m.is_on)


def test_slash_rhythm_lands_on_the_next_answer_and_a_bad_one_is_refused_in_one_line():
    duet = _live(AnswerShape(parse_rhythm("x...")))  # quarters
    end = _play(duet, 0)
    duet.engine.loop(end + 6_000 * MS)
    assert np.allclose(_answer_onsets(duet, end), np.arange(10) * 1.0)
    duet.mode.request_shape("rhythm", "x.x..x..")  # eighth, dotted quarter, dotted quarter: loop of 2 beats
    duet.mode.request_shape("rhythm", "zz")
    assert duet.mode.last_error.startswith("/rhythm: rhythm 'zz'") and "\n" not in duet.mode.last_error
    second = _play(duet, end + 7_000 * MS)
    duet.engine.loop(second + 8_000 * MS)
    expected = [2 * (k // 3) + (0.0, 0.5, 1.25)[k % 3] for k in range(10)]
    assert np.allclose(_answer_onsets(duet, second), expected, atol=1e-6)
    duet.mode.request_shape("rhythm", "off")  # back to the model's own rhythm
    third = _play(duet, second + 9_000 * MS)
    duet.engine.loop(third + 12_000 * MS)
    assert duet.mode.shape.rhythm is None and len(_answer_onsets(duet, third)) == 10


def test_realtime_continue_rhythm_flag(tmp_path, capsys):
    prompt, out = tmp_path / "p.mid", tmp_path / "o.mid"
    write_midi(PHRASE.to_beats(), prompt)
    assert main(["continue", "--prompt", str(prompt), "--out", str(out), "--rhythm", "x.xx", "--notes", "12"]) == 0
    assert "rhythm 3 notes in 1 beats" in capsys.readouterr().out
    written = read_midi(out).to_beats()
    onsets = np.array(written.onsets()[len(PHRASE.notes):])
    assert np.allclose(onsets - onsets[0], [(k // 3) + (0, 0.5, 0.75)[k % 3] for k in range(12)], atol=0.01)
    assert main(["continue", "--prompt", str(prompt), "--out", str(out), "--rhythm", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("realtime: rhythm 'nope'") and err.count("\n") == 1
