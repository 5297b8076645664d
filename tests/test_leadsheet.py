"""Lead sheets: progressions read from text, numerals and MIDI; the bass, chords and melody rendered over them."""

import subprocess
import sys
from pathlib import Path

import mido
import pytest

from realtime.cli import main
from realtime.errors import LeadSheetError
from realtime.leadsheet.comp import Comper, CompStyle
from realtime.leadsheet.judge import judge_rendered
from realtime.leadsheet.melody import fitted_scale, strong
from realtime.leadsheet.parse import check_qualities, parse_text
from realtime.leadsheet.progression import Chord, Key
from realtime.leadsheet.render import melody_generator, read_progression, render, write_rendered

ROOT = Path(__file__).resolve().parents[1]


def names(text, key=None):
    progression = parse_text(text, key)
    return [(span.chord.name, span.start, span.beats) for span in progression.spans], progression.key.name


def test_chord_symbols_in_bars():
    assert names("| C | Am | F | G7 |") == ([("C", 0, 4), ("Am", 4, 4), ("F", 8, 4), ("G7", 12, 4)], "C major")
    spans, _ = names("| F#m7 Bbmaj7 | Dm7b5 G7 | Cdim Caug Csus4 | C/E |")
    assert spans == [("F#m7", 0, 2), ("Bbmaj7", 2, 2), ("Dm7b5", 4, 2), ("G7", 6, 2), ("Cdim", 8, 2),
                     ("Caug", 10, 1), ("Csus4", 11, 1), ("C/E", 12, 4)]
    assert parse_text("| C/E |").spans[0].chord == Chord(0, "maj", 4)
    assert parse_text("| C/C |").spans[0].chord == Chord(0, "maj")  # the root in the bass is no slash chord
    assert [c.chord.quality for c in parse_text("CM7 C- Cø Co7 C+ Csus").spans] == \
        ["maj7", "min", "m7b5", "dim7", "aug", "sus4"]


def test_repeats_and_held_slots():
    assert names("| Dm7 G7 | Cmaj7 | % |")[0] == [("Dm7", 0, 2), ("G7", 2, 2), ("Cmaj7", 4, 8)]
    assert names("| C - - G7 |")[0] == [("C", 0, 3), ("G7", 3, 1)]
    assert names("| C | % | G % |")[0] == [("C", 0, 8), ("G", 8, 4)]
    assert names("C Am % F")[0] == [("C", 0, 4), ("Am", 4, 8), ("F", 12, 4)]  # no bars: a chord a bar


def test_roman_numerals_in_a_key():
    assert names("ii7 V7 Imaj7 in Bb") == ([("Cm7", 0, 4), ("F7", 4, 4), ("Bbmaj7", 8, 4)], "Bb major")
    assert names("i iv V7 i in c")[0] == [("Cm", 0, 4), ("Fm", 4, 4), ("G7", 8, 4), ("Cm", 12, 4)]
    assert names("i VI III VII viio7 in a")[0] == [("Am", 0, 4), ("F", 4, 4), ("C", 8, 4), ("G", 12, 4),
                                                   ("Abdim7", 16, 4)]  # natural minor, the leading tone's vii
    assert names("I bVII IV I", "D")[0] == [("D", 0, 4), ("C", 4, 4), ("G", 8, 4), ("D", 12, 4)]
    assert names("| I V7/V | V7 | I | in G")[0] == [("G", 0, 2), ("A7", 2, 2), ("D7", 4, 4), ("G", 8, 4)]
    assert names("iiø7 V7 i in F# minor") == ([("Abm7b5", 0, 4), ("C#7", 4, 4), ("F#m", 8, 4)], "F# minor")
    assert names("I IV", "c minor")[1] == "C minor" and names("I IV in Ebm")[1] == "Eb minor"


def test_the_key_of_chord_symbols_is_estimated():
    assert parse_text("| C | Am | F | G7 |").key == Key(0, "major")
    assert parse_text("| Am | Dm | E7 | Am |").key == Key(9, "minor")
    assert parse_text("| Bbmaj7 | Gm7 | Cm7 | F7 |").key == Key(10, "major")
    assert parse_text("| C | F |", "G").key == Key(7, "major")  # given, it wins
    # a ii-V-I's roots are all diatonic in G too: the V7 resolving to I says C
    assert parse_text("| Dm7 | G7 | Cmaj7 |").key == Key(0, "major")
    assert parse_text("| Dm7 | G7 | Cmaj7 | A7 |").key == Key(0, "major")  # the turnaround back is not a cadence
    assert parse_text("| Em7b5 | A7 | Dm |").key == Key(2, "minor")


@pytest.mark.parametrize("text, message", [
    ("| C | Am | Hx7 |", 'leadsheet: "Hx7" at token 3: unknown chord root "H"'),
    ("| C | Cq7 |", 'leadsheet: "Cq7" at token 2: unknown chord quality "q7"'),
    ("ii7 V7", 'leadsheet: "ii7" at token 1: a Roman numeral needs a key'),
    ("| % | C |", 'leadsheet: "%" at token 1: nothing before it to repeat'),
    ("| - C |", 'leadsheet: "-" at token 1: no chord before it to hold'),
    ("| C D E F G |", 'leadsheet: "G" at token 5: a bar of 5 chords, more than its 4 beats'),
    ("C F in H", "leadsheet: after \"in\": 'H' is not a key"),
    ("C/Q", 'leadsheet: "C/Q" at token 1: unknown bass note "Q"'),
    ("I V/Z in C", 'leadsheet: "V/Z" at token 2: "Z" after the slash is not a Roman numeral'),
    ("I vM7 in C", 'leadsheet: "vM7" at token 2: unknown quality "M7" for a lower-case (minor) numeral'),
    ("| |", "leadsheet: '| |' holds no chords"),
])
def test_a_bad_progression_is_one_line_naming_the_token(text, message):
    with pytest.raises(LeadSheetError) as caught:
        parse_text(text)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_every_quality_is_one_the_engine_knows():
    check_qualities()


def test_the_bass_plays_roots_on_chord_changes_and_the_chords_their_tones():
    progression = parse_text("| C | Am | F G7 | C/E |")
    comper = Comper(CompStyle(), 4)
    for bar in range(4):
        notes = comper.bar(progression, bar)
        for note in notes:
            chord = progression.chord_at(bar * 4 + note.onset)
            assert note.pitch % 12 in chord.tones, (bar, note)
            assert 0 < note.beats < 4
        bass = {n.onset: n.pitch for n in notes if n.part == "bass"}
        assert bass[0.0] % 12 == progression.chord_at(bar * 4).lowest
        assert all(n.pitch >= 55 for n in notes if n.part == "chords")
    g7 = comper.bar(progression, 2)
    assert {n.onset: n.pitch % 12 for n in g7 if n.part == "bass"}[2.0] == 7  # G7 begins on beat 3: its root
    assert {n.pitch % 12 for n in g7 if n.part == "chords" and n.onset == 2.0} <= {7, 11, 2, 5}
    whole = Comper(CompStyle("whole", "whole"), 4).bar(progression, 2)  # whole notes cut at the change
    assert sorted({(n.part, n.onset, n.beats) for n in whole}) == [("bass", 0.0, 1.8), ("bass", 2.0, 1.8),
                                                                   ("chords", 0.0, 1.8), ("chords", 2.0, 1.8)]


def test_strong_beats_and_the_fitted_scale():
    assert [b for b in (0, 0.5, 1, 2, 3, 4, 6, 7.999999999) if strong(b, 4)] == [0, 2, 4, 6, 7.999999999]
    assert [b for b in range(6) if strong(b, 3)] == [0, 3]
    a_minor = Key(9, "minor")
    assert fitted_scale(a_minor, Chord(4, "7")) == {9, 11, 0, 2, 4, 5, 8}  # G# instead of G over E7
    assert fitted_scale(a_minor, Chord(9, "min")) == set(a_minor.scale())


@pytest.fixture(scope="module")
def generator(shipped_model):
    return melody_generator(str(shipped_model), 0)


def test_the_melody_sings_chord_tones_on_strong_beats_in_key(generator):
    for text in ("| C | Am | F | G7 |", "i iv V7 i in f#", "| Dm7 G7 | Cmaj7 | A7 | Dm7 G7 |"):
        progression = parse_text(text)
        generator.sampler.rng = __import__("numpy").random.default_rng(4)
        rendered = render(progression, 8, generator)
        figures = judge_rendered(rendered)
        melody = rendered.parts["melody"]
        assert len(melody) >= 8 and melody[0][0] == 0.0
        assert figures["melody"][1] >= 8 and figures["melody"][0] == figures["melody"][1]
        assert figures["bass_root"] == (8, 8)
        assert all(60 <= p <= 84 for _, _, p, _ in melody)
        onsets = [o for o, _, _, _ in melody]
        assert onsets == sorted(onsets) and all(o + d <= b + 1e-9 for (o, d, _, _), b in zip(melody, onsets[1:]))
        off_key = [p for o, _, p, _ in melody if p % 12 not in fitted_scale(progression.key, progression.chord_at(o))]
        assert not off_key


def test_the_melody_without_the_lead_sheet_is_not_all_chord_tones(generator):
    """The limits do the work: the LSTM alone, in key, puts other notes on strong beats too."""
    progression = parse_text("| C | Am | F | G7 |")
    generator.sampler.rng = __import__("numpy").random.default_rng(4)
    free = render(progression, 32, generator, strong_beats=False)
    hits, count = judge_rendered(free)["melody"]
    assert count > 20 and hits < count


def test_a_seed_gives_the_same_file_and_the_file_has_three_named_tracks(tmp_path, shipped_model):
    paths = [tmp_path / "a.mid", tmp_path / "b.mid", tmp_path / "c.mid"]
    for path, seed in zip(paths, (1, 1, 2)):
        assert main(["leadsheet", "| C | Am | F | G7 |", "--out", str(path), "--seed", str(seed), "--bars", "8",
                     "--tempo", "90", "--model", str(shipped_model)]) == 0
    assert paths[0].read_bytes() == paths[1].read_bytes() != paths[2].read_bytes()
    midi = mido.MidiFile(paths[0])
    assert [t.name for t in midi.tracks] == ["bass", "chords", "melody"]
    channels = [{m.channel for m in t if m.type == "note_on"} for t in midi.tracks]
    assert channels == [{1}, {2}, {3}]
    assert round(mido.tempo2bpm(next(m.tempo for m in midi.tracks[0] if m.type == "set_tempo"))) == 90
    ends = [sum(m.time for m in t) / midi.ticks_per_beat for t in midi.tracks]
    assert all(28 < end <= 32 for end in ends)


def test_a_midi_file_gives_its_chords_back(tmp_path):
    path = tmp_path / "comp.mid"
    progression = parse_text("| C | Am | F G7 | Dm7 |")
    write_rendered(render(progression, 4, None), str(path), 96)
    read, tempo = read_progression(str(path))
    assert [(s.chord.name, s.start, s.beats) for s in read.spans] == \
        [("C", 0, 4), ("Am", 4, 4), ("F", 8, 2), ("G7", 10, 2), ("Dm7", 12, 4)]
    assert read.key == Key(0, "major") and round(tempo) == 96


def test_the_command_refuses_a_bad_progression_in_one_line(tmp_path, capsys):
    out = tmp_path / "x.mid"
    result = subprocess.run([sys.executable, "-m", "realtime.cli", "leadsheet", "| C | Am | Hx7 |", "--out", str(out)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2 and not out.exists()
    assert result.stderr.strip() == 'realtime: leadsheet: "Hx7" at token 3: unknown chord root "H" (chord roots are A-G)'
    for args, message in ((["nothing.mid"], "no such MIDI file"), (["C F", "--bars", "0"], "--bars must be"),
                          (["C F", "--tempo", "1000"], "--tempo must be")):
        assert main(["leadsheet", *args, "--out", str(out), "--no-melody"]) == 2
        assert message in capsys.readouterr().err
    empty = tmp_path / "empty.mid"
    mido.MidiFile().save(empty)
    with pytest.raises(LeadSheetError, match="no notes to take chords from"):
        read_progression(str(empty))


def test_the_benchmark_meets_the_issues_figures_in_quick_mode(tmp_path):
    """All 12 keys, major and minor, three progressions each: chord tones, roots, key; Bach's beside them."""
    pytest.importorskip("music21")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import leadsheet as bench
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    results = bench.main(["--quick", "--json", str(tmp_path / "leadsheet.json")])
    ours = results["lead_sheet"]
    assert (ours["keys"], ours["modes"], ours["progressions"]) == (12, 2, 6)
    limited = ours["limited"]
    for part in ("bass", "chords", "melody", "all"):
        assert limited[part]["n"] > 0 and limited[part]["share"] >= 0.85, part
    assert limited["bass_root"]["n"] == 12 * 2 * 3 * 8 and limited["bass_root"]["share"] >= 0.75
    assert limited["melody_in_key"]["share"] >= 0.95
    assert ours["worst"]["all"]["share"] >= 0.85
    assert ours["free"]["melody"]["share"] < limited["melody"]["share"]  # the limit does the work
    bach = results["chorales"]
    assert bach["chorales"] >= 10 and bach["soprano"]["n"] > 100 and bach["bass_root"]["n"] > 50
    assert 0.3 < bach["bass_root"]["share"] < 1 and 0.8 < bach["soprano"]["share"] <= 1
    saved = __import__("json").loads((tmp_path / "leadsheet.json").read_text())
    assert saved["headline"].startswith("strong-beat chord tones") and len(saved["table"]) == 11


def test_a_mood_sets_the_tempo_loudness_and_register_and_an_unknown_one_is_one_line(tmp_path, shipped_model, capsys):
    from realtime.moods import load_moods

    moods, heard = load_moods(), {}
    for name in ("calm", "tense"):
        path = tmp_path / f"{name}.mid"
        assert main(["leadsheet", "| C | Am | F | G7 |", "--out", str(path), "--bars", "8", "--mood", name,
                     "--model", str(shipped_model)]) == 0
        midi = mido.MidiFile(path)
        notes = [(m.note, m.velocity) for t in midi.tracks for m in t if m.type == "note_on" and m.velocity]
        melody = [m.note for m in midi.tracks[2] if m.type == "note_on" and m.velocity]
        heard[name] = (mido.tempo2bpm(next(m.tempo for m in midi.tracks[0] if m.type == "set_tempo")),
                       sum(v for _, v in notes) / len(notes), sum(melody) / len(melody))
    assert heard["calm"][0] == pytest.approx(moods["calm"].tempo_bpm, abs=0.01)
    assert heard["tense"][0] == pytest.approx(moods["tense"].tempo_bpm, abs=0.01)
    assert heard["calm"][1] == pytest.approx(moods["calm"].dynamics, abs=2)  # the mean velocity is the mood's
    assert heard["tense"][1] == pytest.approx(moods["tense"].dynamics, abs=2)
    for name, (_, _, mean_pitch) in heard.items():  # the melody's two octaves centred on the mood's register
        assert abs(mean_pitch - moods[name].register) <= 12
    capsys.readouterr()
    assert main(["leadsheet", "C F", "--out", str(tmp_path / "x.mid"), "--mood", "grumpy", "--no-melody"]) == 2
    assert "unknown mood 'grumpy'; known: calm" in capsys.readouterr().err
