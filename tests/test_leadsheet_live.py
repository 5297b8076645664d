"""mode = "leadsheet" on a fake clock and memory ports, through the engine loop as `realtime run` builds it: the
band loops the progression on the patch's tempo, bar lines on time, the root on every beat 1 and chord tones
on the strong beats; a progression sent live lands on the next bar line (one sent within the lookahead of a
line, on the one after), a bad one is refused in one line and the old one plays on, a key moves Roman
numerals; start on the first note; the melody; stop, the player's all-notes-off and a switch end every note;
the [leadsheet] section, its README table and the shipped patch; the text ring records and OSC text limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime.bench.leadlive import heard as heard_of
from realtime.bench.leadlive import judge, offline
from realtime.errors import PatchError
from realtime.events import ControlChange, LeadSheetRequest, ModeRequest, NoteMessage
from realtime.io.oscaddress import AddressTable
from realtime.io.osccodec import Drop
from realtime.io.ring import TEXT_BYTES, EventRing
from realtime.leadsheet.parse import parse_text
from realtime.patch import compile_patch, load_patch, parse_patch
from realtime.settings import ranges_table_markdown
from realtime.stagesettings import DEFAULT_PROGRESSION, LEADSHEET_RANGES

ROOT = Path(__file__).resolve().parents[1]
BASE = {"engine": {"mode": "leadsheet", "tempo_bpm": 100}, "midi": {"enabled": False}, "osc": {"enabled": False}}
LOOKAHEAD_S = 0.02  # [leadsheet] lookahead_ms: with start = "now", bar 1 begins this long after the mode
JAZZ = parse_text(DEFAULT_PROGRESSION)
POP = parse_text("| C | Am | F | G7 |")


def _patch(**sections):
    raw = {name: dict(table) for name, table in BASE.items()}
    for name, table in sections.items():
        raw.setdefault(name, {}).update(table)
    return parse_patch(raw, "test.toml")


def _send(what: str, text: str):
    """An OSC request as the intake hands it to the engine (its input listener), at the script's moment."""
    return lambda live: live.engine._hear(LeadSheetRequest(what, text), live.clock.now_ns())


def _ons(heard, channel):
    return [(t, data[1]) for t, data in heard if data[0] == 0x90 | channel and data[2]]


@pytest.mark.parametrize("bpm", [100.0, 72.0, 150.0])
def test_bars_on_time_roots_on_beat_one_and_chord_tones_on_strong_beats(bpm):
    live, _ = offline(_patch(engine={"tempo_bpm": bpm}), 12 * 4 * 60 / bpm + 0.5)
    live.stop()
    heard = heard_of(live)  # the stop's note-offs too
    result = judge(heard, LOOKAHEAD_S, bpm, [(0, JAZZ)], bars=range(12))
    assert result["bar_line_error_ms"]["max"] < 0.01 and result["bar_line_error_ms"]["n"] >= 12, result
    assert result["bass_interval_error_ms"]["max"] < 0.01, result
    assert result["strong_beat_chord_tones"] == 1.0 and result["roots_on_downbeats"] == 1.0, result
    assert result["downbeats"] == 12 and result["notes"]["bass"] >= 48, result  # the quarter pattern: every beat
    assert result["held_at_end"] == [] and live.ports.held_at_close == set()
    assert {data[0] & 0x0F for _, data in heard} == {1, 2}  # bass and chords on their own channels, never 1


def test_a_new_progression_lands_on_the_next_bar_line_from_its_first_bar():
    bar_s = 2.4
    sent = LOOKAHEAD_S + 2.5 * bar_s  # in the middle of bar 3
    live, heard = offline(_patch(), 8 * bar_s, [(sent, _send("progression", "| C | Am | F | G7 |"))])
    live.stop()
    assert live.mode.replaced == 1 and live.mode.last_error is None
    result = judge(heard, LOOKAHEAD_S, 100.0, [(0, JAZZ), (3, POP)], bars=range(7))
    assert result["strong_beat_chord_tones"] == 1.0 and result["roots_on_downbeats"] == 1.0, result
    bass = _ons(heard, 1)
    downbeat = lambda bar: next(p for t, p in bass if abs(t - LOOKAHEAD_S - bar * bar_s) < 1e-6)  # noqa: E731
    assert [downbeat(b) % 12 for b in range(7)] == [2, 7, 0, 0, 9, 5, 7]  # Dm7 G7 Cmaj7 | C Am F G7
    assert result["bar_line_error_ms"]["max"] < 0.01, result  # the new one keeps the bars' time


def test_a_progression_within_the_lookahead_of_a_bar_line_lands_on_the_one_after():
    bar_s = 2.4
    sent = LOOKAHEAD_S + 3 * bar_s - 0.01  # 10 ms before bar 4: its first notes are handed over already
    live, heard = offline(_patch(), 7 * bar_s, [(sent, _send("progression", "| C | Am | F | G7 |"))])
    live.stop()
    result = judge(heard, LOOKAHEAD_S, 100.0, [(0, JAZZ), (4, POP)], bars=range(6))
    assert result["strong_beat_chord_tones"] == 1.0 and result["roots_on_downbeats"] == 1.0, result


def test_a_bad_progression_is_refused_in_one_line_and_the_old_one_plays_on():
    live, heard = offline(_patch(), 6 * 2.4, [(3.0, _send("progression", "| C | Hx7 | F |"))])
    error = live.mode.last_error
    live.stop()
    assert error is not None and "\n" not in error and '"Hx7" at token 2' in error and "plays on" in error, error
    assert live.mode.refused == 1 and live.mode.replaced == 0
    result = judge(heard, LOOKAHEAD_S, 100.0, [(0, JAZZ)], bars=range(6))
    assert result["strong_beat_chord_tones"] == 1.0 and result["roots_on_downbeats"] == 1.0, result


def test_a_key_moves_roman_numerals_from_the_next_bar_and_a_bad_key_is_refused():
    patch = _patch(leadsheet={"progression": "| ii7 | V7 | Imaj7 | Imaj7 |", "key": "C"})
    script = [(1.0, _send("key", "H")), (3.0, _send("key", "Bb"))]
    live, heard = offline(patch, 5 * 2.4, script)
    live.stop()
    assert live.mode.refused == 1 and "/leadsheet/key" in (live.mode.last_error or ""), live.mode.last_error
    in_c, in_bb = (parse_text("| ii7 | V7 | Imaj7 | Imaj7 |", key) for key in ("C", "Bb"))
    result = judge(heard, LOOKAHEAD_S, 100.0, [(0, in_c), (2, in_bb)], bars=range(5))
    assert result["roots_on_downbeats"] == 1.0 and result["strong_beat_chord_tones"] == 1.0, result
    assert live.mode.key == "Bb"


def test_start_on_the_first_note_waits_then_bar_one_begins_with_it():
    played, lines = 1.7, []
    live, heard = offline(_patch(leadsheet={"start": "first_note"}), played + 4 * 2.4,
                          [(1.0, lambda live: lines.append(live.mode.status_fields(_figures(live), int(1e9)))),
                           (played, lambda live: live.ports.keyboard.play(64, 90))])
    assert "leadsheet: waiting for your first note" in lines[0], lines
    live.stop()
    assert heard and min(t for t, _ in heard) == pytest.approx(played)
    result = judge(heard, played, 100.0, [(0, JAZZ)], bars=range(4))
    assert result["bar_line_error_ms"]["max"] < 0.01 and result["roots_on_downbeats"] == 1.0, result


def _figures(live):
    from realtime.engine.status import measure

    return measure(live.scheduler, 0, 0, 0)


def test_the_melody_is_one_voice_on_its_channel_and_keeps_to_chord_tones_on_strong_beats():
    live, _ = offline(_patch(leadsheet={"melody": True}), 8 * 2.4 + 0.5)
    live.stop()
    heard = heard_of(live)
    result = judge(heard, LOOKAHEAD_S, 100.0, [(0, JAZZ)], bars=range(8))
    assert result["notes"]["melody"] >= 8 and result["per_part"]["melody"] == 1.0, result
    assert result["held_at_end"] == [], result
    sounding, most = set(), 0
    for _, data in heard:
        if data[0] & 0x0F == 3:
            (sounding.add if data[0] & 0xF0 == 0x90 and data[2] else sounding.discard)(data[1])
            most = max(most, len(sounding))
    assert most == 1  # one voice: each note ends where the next begins
    assert all(60 <= data[1] <= 84 for _, data in heard if data[0] & 0x0F == 3)


def test_a_replaced_progression_plans_the_melody_again_for_the_new_chords():
    live, heard = offline(_patch(leadsheet={"melody": True}), 6 * 2.4,
                          [(LOOKAHEAD_S + 1.5 * 2.4, _send("progression", "| F#m7b5 | B7 | Em | Em |"))])
    live.stop()
    new = parse_text("| F#m7b5 | B7 | Em | Em |")
    result = judge(heard, LOOKAHEAD_S, 100.0, [(0, JAZZ), (2, new)], bars=range(6))
    assert result["per_part"]["melody"] == 1.0 and result["strong_beat_chord_tones"] == 1.0, result


@pytest.mark.parametrize("how", ["stop", "cc123", "cc120"])
def test_stop_and_the_players_all_notes_off_end_every_note(how):
    at = LOOKAHEAD_S + 1.1 * 2.4  # the bar's chord and a bass note sound
    script = [] if how == "stop" else [(at, lambda live: live.engine._hear(ControlChange(int(how[2:]), 0), at))]
    live, heard = offline(_patch(leadsheet={"melody": True, "chord_pattern": "whole"}), at + (0 if how == "stop" else 3),
                          script)
    if how == "stop":
        assert live.ports.recorder.held, "something sounds when it stops"
        live.stop()
        assert live.ports.held_at_close == set() and judge(heard, LOOKAHEAD_S, 100, [(0, JAZZ)])["held_at_end"] != []
        return
    after = [t for t, data in heard if t > at + 1e-6 and data[0] & 0xF0 == 0x90 and data[2]]
    assert live.ports.recorder.held == set() and after == [], after  # silent, and the band stopped
    assert live.mode.waiting and not live.mode.running
    live.ports.keyboard.play(60, 90)  # the player's next note brings it back, at the first bar
    live.engine.loop(int((at + 3 + 2.5) * 1e9))
    assert live.ports.recorder.held and live.mode.running
    live.stop()
    assert live.ports.held_at_close == set()


def test_a_switch_ends_every_note_on_the_bands_bar_line_and_the_other_mode_plays():
    patch = _patch(engine={"modes": ["leadsheet", "harmonize"]})
    asked = LOOKAHEAD_S + 1.3 * 2.4
    live, heard = offline(patch, asked + 3, [(asked, lambda live: live.engine._hear(ModeRequest("harmonize"), asked))])
    assert live.mode.active_name == "harmonize"
    band = [t for t, data in heard if data[0] & 0x0F in (1, 2) and data[0] & 0xF0 == 0x90 and data[2]]
    assert max(band) < LOOKAHEAD_S + 2 * 2.4 - 1e-6  # nothing of bar 3
    assert not {key for key in live.ports.recorder.held if key[0] in (1, 2)}
    live.stop()
    assert live.ports.held_at_close == set()


def test_a_progression_sent_to_a_switch_reaches_the_lead_sheet_and_a_switch_without_one_refuses():
    patch = _patch(engine={"modes": ["harmonize", "leadsheet"], "mode": "harmonize"})
    live, _ = offline(patch, 1.0, [(0.5, _send("progression", "| C | G7 |"))])
    assert live.mode.modes["leadsheet"].planner.progression.describe() == "| C | G7 |"
    live.stop()
    live, _ = offline(_patch(engine={"modes": ["harmonize", "accompany"], "mode": "harmonize"}), 1.0,
                      [(0.5, _send("progression", "| C | G7 |"))])
    assert "no lead sheet" in (live.mode.last_error or "")
    live.stop()


def test_follow_tempo_takes_the_tempo_the_listener_hears():
    beat = 60 / 120
    script = [(0.3 + i * beat, lambda live, p=60 + i % 5: live.ports.keyboard.play(p, 90)) for i in range(24)]
    script += [(0.3 + i * beat + 0.2, lambda live, p=60 + i % 5: live.ports.keyboard.play(p, 0)) for i in range(24)]
    live, _ = offline(_patch(leadsheet={"follow_tempo": True}), 0.3 + 24 * beat)
    assert live.mode.grid.bpm == pytest.approx(100.0)  # no playing: the patch's
    live.stop()
    live, _ = offline(_patch(leadsheet={"follow_tempo": True}), 0.3 + 24 * beat, script)
    assert live.mode.grid.source == "listener" and abs(live.mode.grid.bpm - 120) < 1.0, live.mode.grid.bpm
    live.stop()
    live, _ = offline(_patch(), 0.3 + 24 * beat, script)
    assert live.mode.grid.bpm == pytest.approx(100.0)  # follow_tempo = false: the lead sheet is the clock
    live.stop()


def test_the_status_line_shows_the_bar_and_chord():
    live, _ = offline(_patch(), LOOKAHEAD_S + 2.5 * 2.4)
    line = " | ".join(live.mode.status_fields(_figures(live), live.clock.now_ns()))
    live.stop()
    assert "leadsheet bar 3 (3/4) Cmaj7" in line and "100.0 BPM from patch" in line, line


def test_the_leadsheet_section_refuses_bad_values_in_one_line():
    for table, words in (({"progression": "| Dm7 | Hx7 |"}, ['[leadsheet] progression: "Hx7" at token 2']),
                         ({"key": "H"}, ["[leadsheet] key 'H' is not a key"]),
                         ({"bass_channel": 1}, ["bass_channel 1 is the player's"]),
                         ({"melody": True, "melody_channel": 3}, ["chord_channel and melody_channel must differ"]),
                         ({"start": "later"}, ["start must be one of"]),
                         ({"bass_pattern": "eighths"}, ["bass_pattern must be one of"]),
                         ({"velocity": 0}, ["velocity must be between 1 and 127"])):
        with pytest.raises(PatchError) as err:
            _patch(leadsheet=table)
        assert "\n" not in str(err.value) and str(err.value).startswith("test.toml: ")
        assert all(w in str(err.value) for w in words), str(err.value)
    with pytest.raises(PatchError, match='"ii7" at token 1'):  # numerals with no key: named at load, not on stage
        _patch(leadsheet={"progression": "| ii7 | Imaj7 |"})
    assert _patch(leadsheet={"progression": "| ii7 | Imaj7 |", "key": "Bb"}).leadsheet.key == "Bb"


def test_the_shipped_patch_and_the_readme_table():
    patch = load_patch(ROOT / "patches" / "leadsheet.toml")
    settings = compile_patch(patch)
    assert settings.mode == "leadsheet" and settings.tempo_bpm == 100
    assert settings.leadsheet.progression == DEFAULT_PROGRESSION and not settings.leadsheet.melody
    assert (settings.leadsheet.bass_channel, settings.leadsheet.chord_channel) == (1, 2)
    readme = (ROOT / "README.md").read_text()
    assert ranges_table_markdown(LEADSHEET_RANGES) in readme and "patches/leadsheet.toml" in readme


def test_long_text_crosses_the_ring_as_one_event_and_too_long_is_refused():
    ring = EventRing.create(capacity=16)
    try:
        text = "C" * 99 + "Δ" + ("| Dm7 G7 | Cmaj7 | " * 60)[:TEXT_BYTES - 101]  # Δ across a record's edge
        assert len(text.encode()) == TEXT_BYTES
        assert ring.push(NoteMessage(60, 90), 1) and ring.push(LeadSheetRequest("progression", text), 2)
        assert ring.push(LeadSheetRequest("key", "F# minor"), 3)
        assert len(ring) == 1 + 10 + 1
        assert ring.pop() == (NoteMessage(60, 90), 1)
        assert ring.pop() == (LeadSheetRequest("progression", text), 2)
        assert ring.pop() == (LeadSheetRequest("key", "F# minor"), 3) and ring.pop() is None
        assert not ring.push(LeadSheetRequest("progression", "x" * (TEXT_BYTES + 1)), 4)
        for _ in range(7):
            ring.push(NoteMessage(60, 90), 5)
        assert not ring.push(LeadSheetRequest("progression", "x" * 1000), 6)  # 10 records, 9 free: refused whole
        assert len(ring) == 7
    finally:
        ring.close()
    table = AddressTable()
    with pytest.raises(Drop, match=f"1-{TEXT_BYTES} bytes"):
        table.event("/leadsheet/progression", "s", ["| C |" * 300])
    with pytest.raises(Drop, match="control character"):
        table.event("/leadsheet/progression", "s", ["| C |\n| G |"])
    with pytest.raises(Drop, match="1-32 bytes"):
        table.event("/leadsheet/key", "s", ["C" * 33])


def test_the_benchmarks_quick_mode_writes_its_figures(tmp_path):
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("leadsheet_live", ROOT / "benchmarks" / "leadsheet_live.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--quick", "--json", str(tmp_path / "out.json")])
    results = json.loads((tmp_path / "out.json").read_text())
    assert {"bars", "landing", "cost", "headline", "table"} <= set(results)
    assert all(r["chord_tones"] == 1.0 and r["roots"] == 1.0 and r["bar_line_max_ms"] < 0.01 for r in results["bars"])
    land = results["landing"]
    assert land["on_the_next_bar_line"] + land["a_bar_later"] == len(land["rows"])
    assert land["a_bar_later_within_ms"] <= 20.0 < land["latest_on_the_next_ms_before"] + 5.01  # the lookahead
    assert results["cost"]["melody"]["plan_bar_ms"]["p50"] < 50.0  # a bar of the model: milliseconds, not a bar


def test_a_long_progression_crosses_the_real_intake_process_over_udp_and_too_long_is_dropped_in_one_line():
    import socket
    import time

    from realtime.clock import SystemClock
    from realtime.io.intake import OscIntake
    from realtime.io.osccodec import encode_message

    intake, got = OscIntake(SystemClock(), port=0), []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        intake.set_listener(lambda event, at_ns: got.append(event))
        long = "| Dm7 G7 | Cmaj7 | A7 " * 30 + "|"  # 661 bytes: seven of the ring's records
        for text in (long, "x" * (TEXT_BYTES + 1)):
            sock.sendto(encode_message("/leadsheet/progression", text), intake.address)
        sock.sendto(encode_message("/leadsheet/key", "F# minor"), intake.address)
        deadline = time.monotonic() + 3
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert got == [LeadSheetRequest("progression", long), LeadSheetRequest("key", "F# minor")], got
        assert parse_text(long).bars == 90  # three bars, 30 times
        deadline = time.monotonic() + 3
        while not intake.drops and time.monotonic() < deadline:
            time.sleep(0.005)
        warnings = intake.take_warnings()
        assert intake.drops == {"range": 1} and any(f"1-{TEXT_BYTES} bytes" in w for w in warnings), warnings
    finally:
        sock.close()
        intake.close()


def _chord_file(path: Path, chords) -> Path:
    """A MIDI file of block chords, a bar (4 beats) each, written with mido alone (not by our renderer)."""
    import mido
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90), time=0)])
    for pitches in chords:
        track += [mido.Message("note_on", note=p, velocity=70, time=0) for p in pitches]
        track += [mido.Message("note_off", note=p, velocity=0, time=4 * 480 if i == 0 else 0)
                  for i, p in enumerate(pitches)]
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    midi.save(path)
    return path


POP_VOICINGS = [(48, 60, 64, 67), (45, 57, 60, 64), (41, 57, 60, 65), (43, 55, 59, 62, 65)]  # C Am F G7


def _patch_file(folder: Path, progression: str) -> Path:
    path = folder / "band.toml"
    path.write_text('[engine]\nmode = "leadsheet"\ntempo_bpm = 100\n[midi]\nenabled = false\n[osc]\nenabled = false\n'
                    f'[leadsheet]\nprogression = "{progression}"\n')
    return path


def test_the_patch_names_a_midi_file_of_chords_beside_it_and_the_band_plays_them(tmp_path):
    _chord_file(tmp_path / "changes.mid", POP_VOICINGS)
    patch = load_patch(_patch_file(tmp_path, "changes.mid"))  # relative: looked for beside the patch
    live, heard = offline(patch, 8 * 2.4 + 0.5)
    live.stop()
    result = judge(heard_of(live), LOOKAHEAD_S, 100.0, [(0, POP)], bars=range(8))
    assert result["roots_on_downbeats"] == 1.0 and result["strong_beat_chord_tones"] == 1.0, result
    assert [p % 12 for t, p in _ons(heard, 1) if any(abs(t - LOOKAHEAD_S - b * 2.4) < 1e-6 for b in range(8))] == \
        [0, 9, 5, 7, 0, 9, 5, 7]  # C Am F G7, looped at the patch's tempo (not the file's 90)


def test_a_missing_midi_progression_is_named_at_load_and_a_live_one_is_refused_while_the_old_plays_on(tmp_path):
    with pytest.raises(PatchError) as err:
        load_patch(_patch_file(tmp_path, "nowhere.mid"))
    message = str(err.value)
    assert "\n" not in message and "[leadsheet] progression" in message and "nowhere.mid: no such MIDI file" in message
    _chord_file(tmp_path / "pop.mid", POP_VOICINGS)
    patch = load_patch(_patch_file(tmp_path, "| Dm7 | G7 | Cmaj7 | A7 |"))
    script = [(1.0, _send("progression", "gone.mid")), (LOOKAHEAD_S + 2.5 * 2.4, _send("progression", "pop.mid"))]
    live, heard = offline(patch, 8 * 2.4, script)
    error = live.mode.last_error
    live.stop()
    assert live.mode.refused == 1 and live.mode.replaced == 1
    assert "gone.mid: no such MIDI file" in error and "plays on" in error and "\n" not in error, error
    result = judge(heard, LOOKAHEAD_S, 100.0, [(0, JAZZ), (3, POP)], bars=range(7))
    assert result["roots_on_downbeats"] == 1.0 and result["strong_beat_chord_tones"] == 1.0, result
