"""mode = "accompany" on a fake clock and memory ports, through the engine loop as `realtime run` builds it: a bass
and chords on their own channels follow the chord the left hand strikes, on the player's beat (from the chords
struck, or the listener's lock), re-chosen at once when the chord changes; every note ends on a stop, the
player's all-notes-off, a rest and an error; the [accompany] patch section and its README table."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime.bench.accompaniment import CHORDS, PROGRESSION, Strike, judge, notes_of, offline, recorded, strikes
from realtime.engine import accompany as accompany_module
from realtime.engine.beatgrid import BeatGrid
from realtime.engine.comping import chord_classes, close_voicing, pattern_events, place_root
from realtime.engine.voicing import chord_tones
from realtime.errors import PatchError
from realtime.events import ControlChange
from realtime.patch import compile_patch, load_patch, parse_patch
from realtime.settings import ranges_table_markdown
from realtime.stagesettings import ACCOMPANY_RANGES

ROOT = Path(__file__).resolve().parents[1]
BASE = {"engine": {"mode": "accompany"}, "listen": {"zone": "left", "split_pitch": 60},
        "midi": {"enabled": False}, "osc": {"enabled": False}}
BPM, START = 84.0, 0.5
BAR = 4 * 60 / BPM
BASS, CHORD = 1, 2  # 0-based: [accompany] channels 2 and 3


def _raw(**sections) -> dict:
    raw = {name: dict(table) for name, table in BASE.items()}
    for name, table in sections.items():
        raw.setdefault(name, {}).update(table)
    return raw


def run(played: list[Strike], until_s: float | None = None, velocity: int = 80, **sections):
    """The session the patch makes, struck `played` through its engine loop; (live, its notes) with `live` running."""
    end = until_s if until_s is not None else played[-1].at_s + BAR
    live = offline(parse_patch(_raw(**sections), "test.toml"), played, end, velocity=velocity, start_s=START)
    return live, notes_of(recorded(live, START))[0]


def _in_bar(notes, k: int, channel: int):
    """(beat within bar k of the player's grid, pitch) of the note-ons of one channel in that bar."""
    return [(round((n[0] - k * BAR) / (BAR / 4), 3), n[3]) for n in notes
            if n[2] == channel and k * BAR - 1e-3 <= n[0] < (k + 1) * BAR - 1e-3]


def test_the_bass_plays_the_root_on_beat_one_and_every_note_is_a_chord_tone_on_its_own_channels():
    played = strikes(PROGRESSION, BPM)
    live, notes = run(played)
    try:
        result = judge(recorded(live, START), played, BPM)
        assert result["chord_tone_share"] == 1.0 and result["root_in_bass_share"] == 1.0, result
        assert result["beats_without_a_note"] == 0 and result["bass_on_the_beat_share"] == 1.0, result
        assert result["channels"] == [BASS, CHORD]
        sounded = [n for n in notes if n[1] is None or n[1] > n[0] + 1e-3]  # (not the beats taken back)
        for k in range(1, len(played)):
            (first, pitch), *_ = _in_bar(sounded, k, BASS)
            assert first == 0 and pitch % 12 == played[k].root, (k, _in_bar(sounded, k, BASS))
        player = {p for c in played for p in c.pitches}
        assert not [n for n in notes if n[2] == 0], "nothing on the player's channel: the chords are not echoed"
        assert live.mode.grid.source == "chords" and abs(live.mode.grid.bpm - BPM) < 0.5, live.mode.grid.bpm
        assert player  # (the left hand's own pitches may recur in the parts, on their channels only)
    finally:
        live.stop()
    assert live.ports.held_at_close == set()


@pytest.mark.parametrize("bass, chords, bass_beats, chord_beats", [
    ("quarter", "half", [0, 1, 2, 3], [0, 2]),
    ("half", "backbeat", [0, 2], [1, 3]),
    ("whole", "quarter", [0], [0, 1, 2, 3]),
    ("quarter", "whole", [0, 1, 2, 3], [0]),
])
def test_each_pattern_strikes_on_its_beats(bass, chords, bass_beats, chord_beats):
    played = strikes(("C",) * 4, BPM)
    live, notes = run(played, accompany={"bass_pattern": bass, "chord_pattern": chords})
    try:
        for k in (2, 3):  # the tempo is the player's from the second strike on
            bass_notes, chord_notes = _in_bar(notes, k, BASS), _in_bar(notes, k, CHORD)
            assert sorted({beat for beat, _ in bass_notes}) == bass_beats, bass_notes
            assert sorted({beat for beat, _ in chord_notes}) == chord_beats, chord_notes
            assert len(chord_notes) == 3 * len(chord_beats)  # three notes a chord (chord_notes = 3)
            pitches = [pitch for _, pitch in bass_notes]
            root = pitches[0]
            assert root % 12 == 0 and all(pitch >= root for pitch in pitches)
            steps = {"quarter": [0, 7, 4, 12], "half": [0, 7], "whole": [0]}[bass]
            assert [pitch - root for pitch in pitches] == steps, pitches
    finally:
        live.stop()
    before = [n for n in notes_of(recorded(live, START))[0] if n[0] < played[-1].at_s + BAR - 1e-3]
    assert all(n[1] > n[0] for n in before), "the same chord again: nothing taken back (but at the stop)"


def test_a_chord_change_re_chooses_what_was_planned_and_nothing_of_the_old_chord_sounds_after_it():
    # C struck on the bar lines; then F struck 130 ms before the 4th bar's beat 3: with lookahead_ms = 150 the
    # beat's C notes were already pushed; F takes them back, and falls on beat 3 (the bar's middle, near enough)
    c_bars = strikes(("C",) * 4, BPM)[:4]
    change_s = 3 * BAR + 2 * BAR / 4 - 0.13
    played = c_bars[:3] + [Strike(3 * BAR, "C", CHORDS["C"][0], change_s - 0.01),
                           Strike(change_s, "F", CHORDS["F"][0], change_s + 2 * BAR)]
    live, notes = run(played, until_s=change_s + 2 * BAR, accompany={"lookahead_ms": 150, "chord_pattern": "quarter"})
    try:
        f = chord_tones(5, "maj")
        planned = [n for n in notes if change_s < n[0] <= change_s + 0.16 and (n[1] is None or n[1] > n[0])]
        assert planned and not [n for n in planned if n[3] % 12 not in f], planned
        pushed_early = [n for n in notes if n[0] > change_s + 1e-4 and n[1] is not None and n[1] - n[0] < 1e-6]
        assert pushed_early, "the C beat pushed ahead was taken back (ended at its onset)"
        for on, off, channel, pitch, _ in notes:
            if off is not None and off > change_s + 1e-4 and off > on + 1e-6:
                assert pitch % 12 in f or on > change_s + 2 * BAR, (on, off, channel, pitch)
        f_bass = [n for n in notes if n[2] == BASS and abs(n[0] - change_s) < 1e-3]
        assert [n[3] % 12 for n in f_bass] == [5], "the F's root at once"
        assert live.mode.grid.number(round(live.mode.grid.beat_at(int((START + change_s) * 1e9)))) == 2
        assert live.mode.changes == 1
    finally:
        live.stop()
    assert live.ports.held_at_close == set()


def test_channels_are_the_patchs():
    live, notes = run(strikes(("C", "G"), BPM), accompany={"bass_channel": 5, "chord_channel": 9})
    try:
        assert {n[2] for n in notes} == {4, 8}
    finally:
        live.stop()


def test_the_tempo_comes_from_the_listener_when_it_locks_and_from_the_chords_otherwise():
    # 120 BPM: C struck each bar, and a right-hand line on every beat (above the split: no chords from it)
    bpm, beat = 120.0, 0.5
    played = strikes(("C",) * 6, bpm)
    patch = parse_patch(_raw(), "t.toml")
    live = offline(patch, played, 0.0, start_s=START)
    keyboard = live.ports.keyboard
    for i in range(24):
        at = int((START + i * beat) * 1e9)
        live.clock.call_at(at, lambda p=72 + 2 * (i % 4): keyboard.play(p, 90))
        live.clock.call_at(at + int(0.3e9), lambda p=72 + 2 * (i % 4): keyboard.play(p, 0))
    live.engine.loop(int((START + 6 * 4 * beat) * 1e9))
    try:
        assert live.listener.snapshot().tempo.locked
        assert live.mode.grid.source == "listener" and abs(live.mode.grid.bpm - bpm) < 2, live.mode.grid.bpm
        bass = [n[0] for n in notes_of(recorded(live, START))[0] if n[2] == BASS and n[0] > 3 * 4 * beat
                and n[1] is not None and n[1] > n[0]]
        gaps = [b - a for a, b in zip(bass, bass[1:])]
        assert gaps and all(abs(g - beat) < 0.02 for g in gaps), gaps
    finally:
        live.stop()
    # the chords alone at 84 BPM: no lock (one onset a bar), the grid takes the bar from the strikes
    live, notes = run(strikes(("C", "F", "C"), BPM))
    try:
        assert not live.listener.snapshot().tempo.locked and live.mode.grid.source == "chords"
        bass = [n[0] for n in notes if n[2] == BASS and n[0] > BAR and (n[1] is None or n[1] > n[0] + 1e-3)]
        assert all(abs((b - a) - BAR / 4) < 0.002 for a, b in zip(bass, bass[1:])), bass
    finally:
        live.stop()


def test_velocity_follows_the_players_dynamics():
    loud, soft = strikes(("C",) * 3, BPM), strikes(("C",) * 6, BPM)[3:]
    live = offline(parse_patch(_raw(accompany={"velocity_scale": 0.5}), "t.toml"), loud, 3 * BAR, velocity=120,
                   start_s=START)
    try:
        assert {m.velocity for _, m in live.ports.recorder.sent[-8:] if m.is_on} == {60}
        for chord in soft:  # three bars more, played softly
            at = int((START + chord.at_s) * 1e9)
            live.clock.call_at(at, lambda p=chord.pitches: [live.ports.keyboard.play(x, 40) for x in p])
            live.clock.call_at(at + int(chord.off_s * 1e9 - chord.at_s * 1e9),
                               lambda p=chord.pitches: [live.ports.keyboard.play(x, 0) for x in p])
        live.engine.loop(int((START + 6 * BAR) * 1e9))
        late = [m.velocity for t, m in live.ports.recorder.sent if m.is_on and t > (START + 5 * BAR) * 1e9]
        assert late and max(late) <= 22, late  # ~40 x 0.5 once the loud chords are forgotten
    finally:
        live.stop()


def test_stop_with_notes_sounding_ends_every_note_with_its_note_off():
    played = strikes(("C", "Am"), BPM, held_at_stop=True)
    live, _ = run(played, until_s=BAR + 0.1)
    recorder = live.ports.recorder
    assert recorder.held, "notes sound when the stop comes"
    live.stop()
    ons = [m for _, m in recorder.sent if m.is_on]
    offs = [m for _, m in recorder.sent if not m.is_on]
    assert len(offs) == len(ons) and recorder.held == set() and live.ports.held_at_close == set()


def test_the_players_all_notes_off_ends_every_note_and_the_next_chord_starts_again():
    played = strikes(("C", "Am"), BPM, held_at_stop=True)
    live, _ = run(played, until_s=BAR + 0.1)
    try:
        recorder = live.ports.recorder
        assert recorder.held
        live.engine._hear(ControlChange(123, 0), live.clock.now_ns())  # as the keyboard's input hands it over
        live.engine.tick()
        assert recorder.held == set() and not live.mode.running
        live.engine.loop(live.clock.now_ns() + int(BAR * 1e9))
        assert recorder.held == set(), "it rests until the player strikes again"
        at = live.clock.now_ns() + int(0.1e9)
        live.clock.call_at(at - 1000, lambda: [live.ports.keyboard.play(p, 0) for p in CHORDS["Am"][0]])
        live.clock.call_at(at, lambda: [live.ports.keyboard.play(p, 80) for p in CHORDS["F"][0]])
        live.engine.loop(at + int(0.1e9))
        assert live.mode.running and {p % 12 for _, p in recorder.held} <= set(chord_tones(5, "maj"))
    finally:
        live.stop()
    assert live.ports.held_at_close == set()


def test_it_rests_after_stop_after_bars_of_silence_with_every_note_ended():
    played = strikes(("C", "G"), BPM)
    live, notes = run(played, until_s=2 * BAR + 2.2 * BAR, accompany={"stop_after_bars": 1})
    try:
        assert not live.mode.running and live.mode.rests == 1 and live.ports.recorder.held == set()
        last_release = played[-1].off_s
        assert max(n[0] for n in notes) < last_release + 1.1 * BAR
    finally:
        live.stop()


def test_a_key_whose_note_off_never_comes_keeps_the_band_playing_only_max_note_time():
    played = [Strike(0.0, "C", CHORDS["C"][0], None)]  # struck, never let go
    live, notes = run(played, until_s=36.0, accompany={"stop_after_bars": 1})
    try:
        assert live.mode.rests == 1 and not live.mode.running and live.ports.recorder.held == set()
        assert 30.0 < max(n[0] for n in notes) < 30.0 + 2 * BAR, "it played while the key counted as held"
    finally:
        live.stop()


def test_a_failing_accompaniment_ends_its_notes_says_so_once_and_plays_the_next_chord(monkeypatch):
    calls = {"n": 0}
    real = accompany_module.close_voicing

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 6:
            raise ValueError("broken voicing")
        return real(*args)

    monkeypatch.setattr(accompany_module, "close_voicing", flaky)
    live, notes = run(strikes(("C", "F", "G", "C"), BPM))
    try:
        assert live.mode.errors == 1
        assert live.supervise() == ["accompany failed (ValueError: broken voicing); its notes were ended"]
        assert live.mode.running and notes[-1][0] > 3 * BAR, "the next chord struck was accompanied"
    finally:
        live.stop()
    assert live.ports.held_at_close == set()


def test_the_status_line_shows_the_chord_tempo_bar_and_notes():
    live, _ = run(strikes(("C", "Am", "F"), BPM), until_s=2 * BAR + 0.1)
    try:
        line = live.status()
        assert " | accompany F | 84.0 BPM from chords | bar " in line and f" | notes {live.mode.played} | " in line, line
        assert live.mode.played > 0 and " | misses 0 | " in line
    finally:
        live.stop()


# --- the parts ------------------------------------------------------------------------------------------
def test_the_grid_takes_the_bar_from_the_strikes_prefers_a_bar_and_outlasts_one_odd_interval():
    grid = BeatGrid(600e6, 4)  # the patch's 100 BPM
    grid.strike(0)
    grid.strike(int(4 * 714.3e6))  # 84 BPM: 4 beats of 714 ms, not 5 of 600
    assert grid.source == "chords" and abs(grid.bpm - 84) < 0.1 and grid.anchor_ns == int(4 * 714.3e6)
    t = grid.anchor_ns
    grid.strike(t + int(7.6e9))  # a pause: 8 beats of 950 ms would fit, but one interval does not move the grid
    assert abs(grid.bpm - 84) < 0.1 and grid.anchor_ns == t + int(7.6e9)  # (off the grid: a bar starts there)
    grid.strike(t + int(7.6e9) + int(4 * 714.3e6))
    assert abs(grid.bpm - 84) < 0.1
    grid = BeatGrid(60e9 / 84, 4)
    grid.strike(0)
    grid.strike(2_000_000_000)  # 4 beats at 120 rather than 2 at 60: a chord a bar
    assert abs(grid.bpm - 120) < 0.1
    grid.strike(2_000_000_000 + 1_000_000_000)  # the bar's middle beat: a chord change on beat 3
    assert grid.number(round(grid.beat_at(3_000_000_000))) == 2 and abs(grid.bpm - 120) < 0.1
    # the listener locked on one onset a bar says 60 (half the tempo), 10 ms later in phase: the grid takes its
    # phase and fine tempo at its own level, and keeps its bar numbering
    grid.follow(60e9 / 59.5, 3_010_000_000)
    assert grid.source == "listener" and abs(grid.bpm - 119) < 0.01
    assert grid.number(round(grid.beat_at(3_010_000_000))) == 2 and abs(grid.beat_at(3_010_000_000) - 2) < 1e-9


def test_voicings_are_close_in_their_register_and_move_little():
    g7 = chord_classes(7, "7", 3)
    assert sorted(g7) == sorted({7, 11, 5}), "a seventh chord drops its fifth"
    c = close_voicing(chord_classes(0, "maj", 3), (), 55, 79)
    assert max(c) - min(c) < 12 and 55 <= min(c) and max(c) <= 79
    f = close_voicing(chord_classes(5, "maj", 3), c, 55, 79)
    assert sum(abs(a - b) for a, b in zip(f, c)) <= 3, (c, f)  # C E G -> C F A
    assert place_root(0, None, 36, 60) + 12 <= 60 and place_root(2, 40, 36, 60) in (38,)
    assert pattern_events("backbeat", 4) == ((1, 1), (3, 1)) and pattern_events("half", 3) == ((0, 2), (2, 1))


# --- the patch -------------------------------------------------------------------------------------------
def test_the_shipped_patch_compiles_to_the_accompany_mode():
    patch = load_patch(ROOT / "patches" / "accompany.toml")
    s = compile_patch(patch).accompany
    assert compile_patch(patch).mode == "accompany"
    assert (s.bass_channel, s.chord_channel) == (patch.accompany.bass_channel - 1, patch.accompany.chord_channel - 1)


@pytest.mark.parametrize("table, line", [
    ({"bass_channel": 1}, "x.toml: [accompany] bass_channel 1 is the player's: put the accompaniment on channels "
                          "of its own, 2-16"),
    ({"chord_channel": 1}, "x.toml: [accompany] chord_channel 1 is the player's: put the accompaniment on "
                           "channels of its own, 2-16"),
    ({"chord_pattern": "swing"}, "x.toml: [accompany] chord_pattern must be one of 'whole', 'half', 'quarter', "
                                 "'backbeat', got 'swing'"),
    ({"bass_pattern": "backbeat"}, "x.toml: [accompany] bass_pattern must be one of 'whole', 'half', 'quarter', "
                                   "got 'backbeat'"),
    ({"bass_channel": "2"}, "x.toml: [accompany] bass_channel must be a whole number, got '2'"),
    ({"velocity_scale": True}, "x.toml: [accompany] velocity_scale must be a number, got True"),
    ({"chord_notes": 2.5}, "x.toml: [accompany] chord_notes must be a whole number, got 2.5"),
    ({"bass_channel": 4, "chord_channel": 4}, "x.toml: [accompany] bass_channel and chord_channel must differ, "
                                              "both are 4"),
    ({"bass_lowest": 40, "bass_highest": 50}, "x.toml: [accompany] bass_lowest..bass_highest must span an octave "
                                              "at least (every root has a place), got 40..50"),
    ({"swing": 0.5}, "x.toml: [accompany] unknown key 'swing'"),
])
def test_a_bad_accompany_section_is_refused_in_one_line(table, line):
    with pytest.raises(PatchError) as info:
        parse_patch(_raw(accompany=table), "x.toml")
    assert str(info.value).startswith(line) and "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize("name", list(ACCOMPANY_RANGES))
def test_every_accompany_value_accepts_exactly_its_range(name):
    r = ACCOMPANY_RANGES[name]
    step = 1 if r.unit in ("MIDI channel", "MIDI pitch", "notes") else 0.01
    others = {"bass_lowest": {"bass_highest": 127}, "bass_highest": {"bass_lowest": 0},
              "chord_lowest": {"chord_highest": 127}, "chord_highest": {"chord_lowest": 0},
              "bass_channel": {"chord_channel": 16}, "chord_channel": {"bass_channel": 16}}.get(name, {})
    for inside in (r.low, r.high):
        value = int(inside) if step == 1 else inside
        if others and value in others.values() or (name.endswith("_lowest") and value > 115) \
                or (name.endswith("_highest") and value < 12):
            continue  # refused for another reason (a shared channel, a register under an octave)
        parse_patch(_raw(accompany={name: value, **others}), "x.toml")
    for outside in (r.low - step, r.high + step):
        value = int(outside) if step == 1 else outside
        if name.endswith("channel") and value == 1:
            continue  # refused with its own line (above)
        with pytest.raises(PatchError, match=name):
            parse_patch(_raw(accompany={name: value, **others}), "x.toml")


def test_accompany_is_a_stage_mode():
    settings = compile_patch(parse_patch({"engine": {"mode": "accompany", "modes": ["accompany", "harmonize"]}}))
    assert settings.modes == ("accompany", "harmonize")


def test_the_readme_accompany_table_is_the_settings_table():
    assert ranges_table_markdown(ACCOMPANY_RANGES) in (ROOT / "README.md").read_text()
