"""mode = "harmonize" on a fake clock and memory ports, through the engine loop as `realtime run` builds it:
every player note gets its voices at once, in key (or chord tones), led smoothly, released with it; the
[harmonize] patch section and its README table."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime.app import LiveEngine
from realtime.bench.harmony import offline
from realtime.engine import harmonize as harmonize_module
from realtime.engine.voicing import choose_voices, key_triads, scale_of
from realtime.errors import PatchError
from realtime.model.sampling import SCALES, key_pitch_classes
from realtime.patch import compile_patch, load_patch, parse_patch
from realtime.patchports import MemoryPorts
from realtime.settings import ranges_table_markdown
from realtime.stagesettings import HARMONIZE_RANGES

MS = 1_000_000
ROOT = Path(__file__).resolve().parents[1]
BASE = {"engine": {"mode": "harmonize"}, "midi": {"enabled": False}, "osc": {"enabled": False}}
C_SCALE = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77, 79, 81, 83, 84]
G_TUNE = [67, 69, 71, 72, 74, 72, 71, 69, 67, 66, 64, 66, 67, 71, 74, 79, 78, 76, 74, 72, 71, 69, 67]


def _raw(**sections) -> dict:
    raw = {name: dict(table) for name, table in BASE.items()}
    for name, table in sections.items():
        raw.setdefault(name, {}).update(table)
    return raw


def melody(pitches, beat_ms: float = 250, legato: float = 0.8, start_ms: float = 100, velocity: int = 100):
    """(at ms, pitch, velocity) note-ons and note-offs of a line, one note a beat."""
    events = []
    for i, pitch in enumerate(pitches):
        at = start_ms + i * beat_ms
        events += [(at, pitch, velocity), (at + beat_ms * legato, pitch, 0)]
    return events


def perform(raw: dict, events, until_ms: float | None = None) -> LiveEngine:
    """The session a patch makes, played `events` (at ms, pitch, velocity[, channel]) through its engine loop."""
    end = until_ms if until_ms is not None else max(e[0] for e in events) + 500
    return offline(parse_patch(raw, "test.toml"), [(int(e[0] * MS), *(*e[1:], 0)[:3]) for e in events], int(end * MS))


def voicings(live: LiveEngine, events) -> list[tuple[int, int, list[int], list[int]]]:
    """Per player note-on: (at ns, pitch, harmony note-ons sent at that moment, their velocities)."""
    sent = live.ports.recorder.sent
    out = []
    for at, pitch, velocity, *_ in events:
        if velocity:
            ons = [m for t, m in sent if t == int(at * MS) and m.is_on]
            out.append((int(at * MS), pitch, [m.pitch for m in ons], [m.velocity for m in ons]))
    return out


def test_every_note_gets_its_voices_at_once_below_it_in_key_on_their_channel_and_loses_them_with_it():
    events = melody(C_SCALE + C_SCALE[::-1])
    live = perform(_raw(model={"key": "C major"}), events)
    try:
        scale = key_pitch_classes("C major")
        for at, pitch, voices, velocities in voicings(live, events):
            assert len(voices) == 2, (pitch, voices)
            assert all(v < pitch and v % 12 != pitch % 12 and v % 12 in scale for v in voices), (pitch, voices)
            assert velocities == [80, 80]  # 100 x velocity_scale 0.8
        harmony = [m for _, m in live.ports.recorder.sent]
        assert harmony and all(m.channel == 1 for m in harmony)  # channel 2 as musicians count
        # each note-off of the player ends exactly the voices its note-on started, at that moment
        for at, pitch, velocity in events:
            if not velocity:
                offs = sorted(m.pitch for t, m in live.ports.recorder.sent if t == int(at * MS) and not m.is_on)
                on_at = at - 250 * 0.8
                assert offs == sorted(next(v for t, p, v, _ in voicings(live, events) if t == int(on_at * MS)))
        assert live.ports.recorder.held == set()
    finally:
        live.stop()
    assert live.ports.held_at_close == set()


def test_without_a_patch_key_the_key_heard_rules_and_the_first_note_until_then():
    events = melody(G_TUNE)
    live = perform(_raw(), events)
    try:
        assert live.listener.snapshot().key.name == "G major"
        scale = key_pitch_classes("G major")
        notes = voicings(live, events)
        assert all(len(v) == 2 and all(p % 12 in scale for p in v) for _, _, v, _ in notes), notes
    finally:
        live.stop()


def test_voices_move_by_small_steps_on_a_stepwise_line_and_never_cross():
    events = melody(C_SCALE + C_SCALE[::-1])
    live = perform(_raw(model={"key": "C major"}, harmonize={"voices": 3}), events)
    try:
        notes = voicings(live, events)
    finally:
        live.stop()
    moves = []
    for (_, melody_a, a, _), (_, melody_b, b, _) in zip(notes, notes[1:]):
        a, b = sorted(a, reverse=True), sorted(b, reverse=True)  # each voice: nearest the melody first
        assert len(a) == len(b) == 3 and max(b) < melody_b
        moves += [abs(x - y) for x, y in zip(a, b)]
    assert max(moves) <= 3, moves  # a line by steps leads every voice by a step or so
    assert sum(m <= 2 for m in moves) / len(moves) >= 0.9, moves


def test_above_places_every_voice_above_the_melody_within_the_register():
    events = melody(C_SCALE[:8])
    live = perform(_raw(model={"key": "C major"}, harmonize={"placement": "above", "highest": 80}), events)
    try:
        for _, pitch, voices, _ in voicings(live, events):
            assert voices and all(pitch < v <= 80 for v in voices), (pitch, voices)
    finally:
        live.stop()


def test_a_held_chord_is_harmonized_from_and_its_left_hand_gets_no_voices():
    # F major held below split_pitch 60; melody D E F above it; then, long after, a D alone
    chord = [(100, 53, 90), (100, 57, 90), (100, 60 - 12, 90)]  # F3 A3 C3
    line = [(300, 74, 100), (500, 74, 0), (500, 76, 100), (700, 76, 0), (700, 77, 100), (900, 77, 0)]
    release = [(1000, 53, 0), (1000, 57, 0), (1000, 48, 0)]
    late = [(4000, 74, 100), (4200, 74, 0)]
    events = chord + line + release + late
    live = perform(_raw(model={"key": "C major"}, listen={"zone": "left", "split_pitch": 60}), events)
    try:
        notes = voicings(live, events)
        assert [v for t, p, v, _ in notes if p < 60] == [[], [], []]  # the chord itself is not harmonized
        for _, pitch, voices, _ in notes[3:6]:
            assert voices and {v % 12 for v in voices} <= {5, 9, 0}, (pitch, voices)  # F A C
        _, _, voices, _ = notes[6]  # the chord stopped sounding 3 s ago: the key's triad on D
        assert {v % 12 for v in voices} <= {2, 5, 9} and len(voices) == 2, voices
    finally:
        live.stop()


def test_overlapping_and_restruck_notes_each_own_their_voices_and_none_is_cut_or_stuck():
    # legato: E struck before C is let go (they share G), then C struck twice before either note-off
    events = [(100, 72, 100), (300, 76, 100), (400, 72, 0), (600, 76, 0),
              (800, 72, 100), (900, 72, 100), (1000, 72, 0), (1200, 72, 0)]
    live = perform(_raw(model={"key": "C major"}), events, until_ms=0)
    try:
        recorder = live.ports.recorder
        for moment, _, _ in events:
            live.engine.loop(moment * MS)
            held: dict[int, int] = {}  # what a synth pairing note-ons with note-offs sounds now
            for _, m in recorder.sent:
                held[m.pitch] = held.get(m.pitch, 0) + (1 if m.is_on else -1)
                assert held[m.pitch] in (0, 1), f"a note-on over a sounding voice, or a note-off for none: {m}"
            sounding = {pitch for pitch, count in held.items() if count}
            owned = {pitch for owners in live.mode._owners.values() for _, voices in owners for pitch in voices}
            assert sounding == owned and bool(owned) == (moment not in (600, 1200)), (moment, sounding, owned)
        restruck = live.mode._previous
        assert recorder.held == set() and not live.mode._owners and restruck
        # the second C took the first's voices over: when the first C was let go (1000 ms) they sounded on
        assert not [m for t, m in recorder.sent if t == 1000 * MS]
    finally:
        live.stop()


def test_a_note_struck_and_let_go_within_one_tick_still_gets_and_loses_its_voices():
    live = perform(_raw(model={"key": "C major"}), [(100, 72, 100), (100, 72, 0)], until_ms=300)
    try:
        ons = [m for _, m in live.ports.recorder.sent if m.is_on]
        offs = [m for _, m in live.ports.recorder.sent if not m.is_on]
        assert len(ons) == 2 and sorted(m.pitch for m in offs) == sorted(m.pitch for m in ons)
    finally:
        live.stop()


def test_stop_with_notes_held_ends_every_voice_with_its_note_off():
    events = [(100, 72, 100), (200, 76, 100), (300, 79, 100)]
    live = perform(_raw(model={"key": "C major"}), events, until_ms=400)
    recorder = live.ports.recorder
    assert len(recorder.held) >= 4
    live.stop()
    offs = [m for t, m in recorder.sent if not m.is_on]
    assert {m.pitch for m in offs} == {m.pitch for _, m in recorder.sent if m.is_on} and all(m.channel == 1 for m in offs)
    assert live.ports.held_at_close == set()


def test_a_failing_harmonizer_ends_its_voices_says_so_once_and_the_next_notes_are_voiced(monkeypatch):
    calls = {"n": 0}
    real = harmonize_module.choose_voices

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ValueError("broken voicing")
        return real(*args)

    monkeypatch.setattr(harmonize_module, "choose_voices", flaky)
    events = [(100, 72, 100), (200, 76, 100), (300, 79, 100), (400, 77, 100), (500, 77, 0)]
    live = perform(_raw(model={"key": "C major"}), events, until_ms=600)
    try:
        sent = live.ports.recorder.sent
        assert [m for t, m in sent if t == 300 * MS and m.is_on] == []
        assert {m.pitch for t, m in sent if t == 300 * MS and not m.is_on} == {m.pitch for t, m in sent if t < 300 * MS}
        assert len([m for t, m in sent if t == 400 * MS and m.is_on]) == 2
        assert live.supervise() == ["harmonize failed (ValueError: broken voicing); its voices were ended"]
        assert live.ports.recorder.held == set()  # the F's voices ended with its note-off
    finally:
        live.stop()


def test_a_note_off_that_never_comes_ends_its_voices_after_max_note_ms():
    live = perform(_raw(model={"key": "C major"}), [(100, 72, 100)], until_ms=32_000)
    try:
        assert live.ports.recorder.held == set() and live.mode.timed_out == 1
    finally:
        live.stop()


def test_the_status_line_counts_notes_and_voices():
    live = perform(_raw(model={"key": "C major"}), [(100, 72, 100), (300, 76, 100)], until_ms=400)
    try:
        line = live.status()
        # C gets G E; E keeps the common tone G and takes B below it: the G sounds once, held by both
        assert [m.pitch for _, m in live.ports.recorder.sent] == [67, 64, 59]
        assert line.startswith("in 2 | out 3 | harmonized 2 | voices 3 | voiced in p50 0.00 ms p99 0.00 ms"), line
        assert " | misses 0 | chord " in line
    finally:
        live.stop()


def test_choose_voices_avoids_the_melody_and_fits_the_register():
    scale = scale_of(0, SCALES["major"])
    assert choose_voices(72, key_triads(0, scale), (), 2, False, 0, 127) == (67, 64)  # G E under C
    assert choose_voices(50, key_triads(2, scale), (), 2, False, 48, 127) == ()  # no F or A in 48..49
    # C# is outside C major: no voice a semitone from it (no C, no D)
    for voices in [choose_voices(73, key_triads(1, scale), (69, 64), 2, False, 0, 127)]:
        assert voices and all(v % 12 in scale and (v - 73) % 12 not in (1, 11) for v in voices)


# --- the patch -------------------------------------------------------------------------------------------
def test_the_shipped_patch_compiles_to_the_harmonize_mode_on_its_own_channel():
    patch = load_patch(ROOT / "patches" / "harmonize.toml")
    settings = compile_patch(patch)
    assert settings.mode == "harmonize" and settings.harmonize.channel == patch.harmonize.channel - 1 == 1


def test_the_harmony_on_the_players_channel_is_refused_in_one_line():
    with pytest.raises(PatchError) as info:
        parse_patch(_raw(harmonize={"channel": 1}), "x.toml")
    assert str(info.value) == "x.toml: [harmonize] channel 1 is the player's: put the harmony on a channel of its own, 2-16"
    for bad, word in (({"placement": "beside"}, "placement"), ({"lowest": 80, "highest": 70}, "lowest"),
                      ({"voices": 2.5}, "voices"), ({"colour": 1}, "colour")):
        with pytest.raises(PatchError, match=word):
            parse_patch(_raw(harmonize=bad), "x.toml")


@pytest.mark.parametrize("name", list(HARMONIZE_RANGES))
def test_every_harmonize_value_accepts_exactly_its_range(name):
    r = HARMONIZE_RANGES[name]
    step = 1 if isinstance(r.low, int) and isinstance(r.high, int) else 0.01
    others = {"lowest": {"highest": 127}, "highest": {"lowest": 0}}.get(name, {})
    for inside in (r.low, r.high):
        parse_patch(_raw(harmonize={name: inside, **others}), "x.toml")
    for outside in (r.low - step, r.high + step):
        if name == "channel" and outside == 1:
            continue  # refused with its own line (above)
        with pytest.raises(PatchError, match=name):
            parse_patch(_raw(harmonize={name: outside, **others}), "x.toml")


def test_the_readme_harmonize_table_is_the_settings_table():
    assert ranges_table_markdown(HARMONIZE_RANGES) in (ROOT / "README.md").read_text()
