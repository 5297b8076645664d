"""Styles, roles and harmony told to a stage model: the control row each mode's model hears, before and after
a style switch lands on the bar (OSC `/style`, a program change), bad names refused in one line, the patch's
keys checked against the model's card, the offline `--style` flags.

Until models/stage-lstm.int8.onnx exists the model is a small graph with torch's initial weights and the
stage card's 49 controls (exported here): the plumbing can be tested, not the music; the test of musical
effect skips until the real model is there.
"""

from __future__ import annotations

import tomllib
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from realtime.clock import FakeClock
from realtime.engine.continuation import ContinuationSettings
from realtime.engine.engine import Engine
from realtime.engine.gamesetup import build_game_mode
from realtime.engine.stagecontrols import StageControls, voice_role
from realtime.errors import InputError, PatchError
from realtime.events import ModeRequest, NoteSequence, ShapeRequest
from realtime.io.ports import MemoryOutput, MidiParser
from realtime.leadsheet.parse import parse_text
from realtime.leadsheet.render import leadsheet_file, melody_generator, render
from realtime.listen import Listener
from realtime.model import controls as ctl
from realtime.model.generator import build_generator
from realtime.model.modelfile import models_dir
from realtime.offline import Duet, continue_file, phrase_events
from realtime.patch import compile_patch, parse_patch

ROOT = Path(__file__).resolve().parents[1]
MS = 1_000_000
STAGE = models_dir() / "stage-lstm.int8.onnx"
MELODY = NoteSequence.from_absolute([(i * 300.0, 250.0, p, 80) for i, p in enumerate([67, 71, 74, 72, 71, 69, 67])],
                                    "ms", 100.0)
CHORDS = NoteSequence.from_absolute([(i * 600.0, 500.0, p, 80) for i in range(4) for p in (48, 52, 55)], "ms", 100.0)


def _on(row: np.ndarray, prefix: str) -> list[str]:
    return [name[len(prefix):] for name in ctl.CONTROL_NAMES if name.startswith(prefix) and row[ctl.INDEX[name]] == 1]


def _harmony(row: np.ndarray) -> tuple[set[int], list[int]]:
    return set(np.flatnonzero(row[ctl.CHORD_SLICE])), list(np.flatnonzero(row[ctl.ROOT_SLICE]))


# --- the pieces ----------------------------------------------------------------------------------------
def test_a_style_waits_for_its_bar_line_and_a_program_change_is_the_cards_nth_style():
    stage, row = StageControls(ctl.INDEX, "chorale"), ctl.DEFAULTS.copy()
    assert stage.styles == ctl.STYLES and stage.roles == ctl.ROLES
    stage.write_style(row)
    assert _on(row, "style_") == ["chorale"]
    assert stage.request("irish", 1_000) is None and stage.pending == "irish"
    assert not stage.due(999) and stage.style == "chorale"  # before the bar line: nothing changes
    assert stage.due(1_000) and stage.style == "irish" and stage.pending is None
    stage.write_style(row)
    assert _on(row, "style_") == ["irish"]
    assert stage.by_program(2, 2_000) is None and stage.pending == "fiddle"
    refusal = stage.by_program(9, 2_000)
    assert refusal == "program change 9 ignored: this model has 4 styles (0 chorale, 1 irish, 2 fiddle, 3 folk)"
    assert stage.pending == "fiddle", "a program past the list changes nothing"
    refusal = stage.request("jazz", 3_000)
    assert refusal == "/style 'jazz': not a style of this model (its styles: chorale, irish, fiddle, folk)"
    assert stage.pending == "fiddle" and stage.refused == 2
    assert stage.request("off", 3_000) is None and stage.due(3_000) and stage.style is None
    stage.write_style(row)
    assert _on(row, "style_") == []
    assert StageControls({"density": 0}).request("irish", 0).startswith("/style 'irish': this model has no style")


def test_harmony_is_written_only_when_the_chord_changes_and_roles_follow_the_voices_settings():
    stage, row = StageControls(ctl.INDEX), ctl.DEFAULTS.copy()
    assert stage.write_harmony(row, (9, 0, 4), 9)
    assert _harmony(row) == ({0, 4, 9}, [9])
    assert not stage.write_harmony(row, (0, 4, 9), 9), "the same chord again writes nothing"
    assert stage.write_harmony(row, (), None) and _harmony(row) == (set(), [])
    assert voice_role(None, 3.0, 4, 60.0) == "texture"  # pads
    assert voice_role(None, 1.0, 1, 40.0) == "bass"
    assert voice_role(None, 1.0, 1, 74.0) == "melody"
    assert voice_role("inner", 1.0, 1, 74.0) == "inner"  # the voice's role key wins


# --- the duet ------------------------------------------------------------------------------------------
def _duet(model: Path, style: str | None = "chorale"):
    settings = ContinuationSettings(tempo_bpm=100, phrase_end_ms=400, answer_notes=8, answer_beats=40, style=style)
    listener = Listener(tempo_bpm=100)
    duet = Duet(build_generator(str(model), 1), settings, FakeClock(), listener=listener)
    return duet, duet.generator.runner.controls[0]


def _play(duet, phrase: NoteSequence, start_ns: int) -> int:
    events = phrase_events(phrase, start_ns)
    for at_ns, pitch, velocity in events:
        duet.clock.call_at(at_ns, partial(duet.keyboard.play, pitch, velocity))
    return events[-1][0]


def test_the_duet_hears_its_style_role_and_chord_and_a_live_style_waits_for_the_next_answer(stage_model):
    duet, row = _duet(stage_model)
    end = _play(duet, CHORDS, 0)  # C major triads: chords, so the answer's role is texture
    duet.engine.loop(end + 600 * MS)  # the answer has begun
    assert duet.mode.answering
    assert _on(row, "style_") == ["chorale"] and _on(row, "role_") == ["texture"]
    assert _harmony(row) == ({0, 4, 7}, [0]), "the listener's chord, C major"
    duet.engine._inbox.append((ShapeRequest("style", "irish"), duet.clock.now_ns()))
    duet.engine._inbox.append((ShapeRequest("style", "jazz"), duet.clock.now_ns()))
    duet.engine.loop(duet.clock.now_ns() + 50 * MS)
    assert "'jazz': not a style of this model" in duet.mode.last_error and "\n" not in duet.mode.last_error
    assert _on(row, "style_") == ["chorale"], "the answer playing keeps its style"
    duet.engine.loop(end + 20_000 * MS)
    second = _play(duet, MELODY, end + 21_000 * MS)  # single notes: the answer's role is melody
    duet.engine.loop(second + 600 * MS)
    assert _on(row, "style_") == ["irish"] and _on(row, "role_") == ["melody"]
    assert "style irish" in " ".join(duet.mode.status_fields(_figures(), 0))
    duet.engine._inbox.append((ModeRequest(program=3), duet.clock.now_ns()))  # a session of one mode: a style
    duet.engine._inbox.append((ModeRequest(program=12), duet.clock.now_ns()))
    duet.engine.loop(second + 20_000 * MS)
    assert duet.mode.last_error.startswith("program change 12 ignored: this model has 4 styles")
    third = _play(duet, MELODY, second + 21_000 * MS)
    duet.engine.loop(third + 600 * MS)
    assert _on(row, "style_") == ["folk"]
    duet.engine.close()


def _figures():
    from realtime.engine.status import Figures

    return Figures(messages_in=0, sent=0, jitter_ms=None, misses=0, dropped=0)


def test_a_program_change_from_midi_reaches_the_style_in_a_session_of_one_mode(stage_model):
    duet, row = _duet(stage_model, style=None)
    parser = MidiParser(accept_clock=False, warn=print)
    parser.listener = lambda message, at_ns: duet.engine._inbox.append((message, at_ns))
    parser.dispatch(bytes([0xC0, 1]), 0, "keys")  # program 2 as musicians count: the second style, irish
    duet.engine.tick()
    assert duet.mode.follow.stage.pending == "irish" and duet.engine.mode_requests_ignored == 0
    end = _play(duet, MELODY, duet.clock.now_ns() + 10 * MS)
    duet.engine.loop(end + 600 * MS)
    assert _on(row, "style_") == ["irish"]
    duet.engine.close()


# --- game mode -----------------------------------------------------------------------------------------
def _game_patch(model: Path, extra_engine: str = "", boss_style: str | None = "fiddle") -> dict:
    raw = tomllib.loads((ROOT / "patches" / "game.toml").read_text())
    raw["model"]["name"] = str(model)
    raw["engine"]["style"] = "chorale"
    if boss_style is not None:
        raw["game"]["states"]["combat"]["style"] = boss_style
    return raw


def test_game_voices_hear_their_roles_and_a_state_names_its_own_style(stage_model):
    settings = compile_patch(parse_patch(_game_patch(stage_model), "g.toml"))
    clock = FakeClock(1_000_000_000)
    mode, scheduler, _ = build_game_mode(settings, clock, MemoryOutput(clock), raw_send=lambda data: None)
    engine = Engine(mode, clock, [], scheduler, poll_ms=5)
    rows = mode.bank.controls
    names = [v.settings.name for v in mode.voices]
    roles = {name: _on(rows[i], "role_") for i, name in enumerate(names)}
    assert roles == {"pads": ["texture"], "bass": ["bass"], "melody": ["melody"]}
    assert all(_on(rows[i], "style_") == ["chorale"] for i in range(len(names)))
    mode.start(clock.now_ns())
    engine.loop(mode.tempo.ns_at(5.3))
    engine._inbox.append((ShapeRequest("style", "irish"), clock.now_ns()))  # lands at the next bar line, beat 8
    engine.loop(mode.tempo.ns_at(7.5))
    assert all(_on(rows[i], "style_") == ["chorale"] for i in range(len(names))), "not before the bar line"
    assert "style chorale -> irish at the bar" in " ".join(mode.status_fields(_figures(), clock.now_ns()))
    engine.loop(mode.tempo.ns_at(8.5))
    assert mode.transitions[-1][:2] == ("calm", 8.0)
    assert all(_on(rows[i], "style_") == ["irish"] for i in range(len(names)))
    from realtime.engine.gameparts import GameMessage

    mode.post(GameMessage("state", "combat"), clock.now_ns())  # the boss fight names a style of its own
    engine.loop(mode.tempo.ns_at(16.5))
    assert mode.transitions[-1][0] == "combat" and all(_on(rows[i], "style_") == ["fiddle"] for i in range(3))
    engine._inbox.append((ShapeRequest("style", "folk"), clock.now_ns()))  # steers the states naming none
    engine.loop(mode.tempo.ns_at(24.5))
    assert all(_on(rows[i], "style_") == ["fiddle"] for i in range(3)) and mode.stage.style == "folk"
    mode.post(GameMessage("state", "calm"), clock.now_ns())
    engine.loop(mode.tempo.ns_at(32.5))
    assert all(_on(rows[i], "style_") == ["folk"] for i in range(3))
    engine.close()


def test_the_patch_refuses_a_style_its_model_lacks_in_one_line(stage_model):
    raw = _game_patch(stage_model, boss_style="jazz")
    with pytest.raises(PatchError) as err:
        parse_patch(raw, "g.toml")
    assert str(err.value) == ("g.toml: [game.states.combat] style 'jazz' is not a style of model "
                              f"{stage_model} (its styles: chorale, irish, fiddle, folk)")
    with pytest.raises(PatchError, match=r"^d.toml: \[engine\] style 'irish' is not a style of model game-lstm.int8 "
                                         r"\(it has no style controls; a stage model has chorale, irish"):
        parse_patch({"engine": {"style": "irish"}, "model": {"name": "game-lstm.int8"}}, "d.toml")
    raw = _game_patch(stage_model)
    raw["game"]["voices"]["bass"]["role"] = "lead"
    with pytest.raises(PatchError, match=r"^g.toml: \[game.voices.bass\] role must be one of melody, bass, inner"):
        parse_patch(raw, "g.toml")
    settings = compile_patch(parse_patch({"engine": {"style": "folk"}, "model": {"name": str(stage_model)}}, "p.toml"))
    assert settings.style == "folk" and settings.continuation.style == "folk"


# --- the lead sheet and offline ------------------------------------------------------------------------
def test_the_lead_sheet_melody_hears_each_chord_and_its_role_and_style(stage_model):
    progression = parse_text("| C | Am | F | G7 |", None, 4)
    generator = melody_generator(str(stage_model), 0)
    heard = []
    commit = generator.commit

    def spy(token):  # the row the model hears with each note the melody keeps
        heard.append(generator.runner.controls[0].copy())
        return commit(token)
    generator.commit = spy
    rendered = render(progression, 8, generator, model_style="irish")
    rows = heard[:len(rendered.parts["melody"])]  # (the last note chosen, past the end, is heard too)
    assert rendered.parts["melody"] and len(heard) == len(rendered.parts["melody"]) + 1
    assert all(_on(r, "style_") == ["irish"] and _on(r, "role_") == ["melody"] for r in rows)
    chords = {frozenset(_harmony(r)[0]) for r in rows}
    assert chords <= {frozenset(s.chord.tones) for s in progression.spans} and len(chords) >= 3
    for (onset, beats, _, _), r in zip(rendered.parts["melody"], rows):  # the chord where the note ends
        assert _harmony(r)[1] == [progression.chord_at(onset + beats).root] or onset + beats >= 32


def test_offline_style_flags_name_the_styles_the_model_has(stage_model, tmp_path):
    out = tmp_path / "l.mid"
    summary = leadsheet_file("| C | G |", str(out), bars=2, model=str(stage_model), style="fiddle")
    assert out.exists() and summary.endswith("; style fiddle)")
    with pytest.raises(InputError, match=r"^--style 'jazz': not a style of this model \(its styles: chorale, irish"):
        leadsheet_file("| C | G |", str(out), bars=2, model=str(stage_model), style="jazz")
    from realtime.events import write_midi

    prompt = tmp_path / "p.mid"
    write_midi(MELODY, str(prompt))
    summary = continue_file(str(prompt), str(tmp_path / "c.mid"), str(stage_model), notes=6, style="chorale")
    assert "; style chorale" in summary
    with pytest.raises(InputError, match=r"^--style 'folk': this model has no style controls"):
        continue_file(str(prompt), str(tmp_path / "c.mid"), "game-lstm.int8", notes=6, style="folk")


def test_a_live_style_lands_on_the_lead_sheets_next_bar_line_that_bar_planned_again(stage_model):
    from realtime.bench.leadlive import offline as leadsheet_offline

    raw = {"engine": {"mode": "leadsheet", "tempo_bpm": 100, "style": "chorale"}, "model": {"name": str(stage_model)},
           "leadsheet": {"melody": True}, "midi": {"enabled": False}, "osc": {"enabled": False}}
    planned = []  # (bar, the style the melody plays it in)

    def spy(live):
        melody = live.mode.planner.melody
        land = melody.land
        melody.land = lambda bar: (land(bar), planned.append((bar, melody.stage.style)))

    def ask(name):
        return lambda live: live.engine._hear(ShapeRequest("style", name), live.clock.now_ns())
    bar_s = 2.4
    live, _ = leadsheet_offline(parse_patch(raw, "l.toml"), 6 * bar_s,
                                [(0.0, spy), (0.02 + 2.5 * bar_s, ask("irish")), (0.02 + 2.6 * bar_s, ask("jazz"))])
    live.stop()
    # bar 3 (0-based) was planned a bar ahead in chorale when the request came in bar 2: planned again in irish
    assert planned[:3] == [(2, "chorale"), (3, "chorale"), (3, "irish")], planned
    assert all(style == "irish" for bar, style in planned[2:]) and planned[-1][0] >= 5
    assert "'jazz': not a style of this model" in live.mode.last_error


def test_a_melody_tells_the_duet_no_harmony_and_chords_tell_it_theirs(stage_model):
    """The listener guesses a chord from a single line too; the model learned harmony from voices sounding
    together, so a melody's guess is not told (it pulled a high answer an octave down)."""
    duet, row = _duet(stage_model)
    end = _play(duet, MELODY, 0)
    duet.engine.loop(end + 500 * MS)
    assert duet.mode.answering and _on(row, "role_") == ["melody"]
    assert duet.engine.listener.snapshot(duet.clock.now_ns()).chord.root is not None, "the listener did guess a chord"
    assert _harmony(row) == (set(), []), "a melody's guessed chord is not told"


def test_trade_takes_a_live_style_outside_the_engines_bars(stage_model):
    from realtime.engine.trade import Trade
    from realtime.scheduler import Scheduler
    from realtime.stagesettings import TradeSettings

    clock = FakeClock()
    generator = build_generator(str(stage_model), 0)
    trade = Trade(generator, TradeSettings(), Scheduler(MemoryOutput(clock)), clock, None, style="folk")
    row = generator.runner.controls[0]
    assert _on(row, "style_") == ["folk"] and _on(row, "role_") == ["melody"]
    trade.owner = "engine"  # the engine's bars: the style waits for the player's
    trade.request_style(None, clock.now_ns(), program=1)
    clock.advance_ms(10_000)
    trade._tick(clock.now_ns())
    assert trade.stage.pending == "irish" and _on(row, "style_") == ["folk"]
    trade.owner = "player"
    trade._tick(clock.now_ns())
    assert trade.stage.style == "irish" and _on(row, "style_") == ["irish"]


def test_the_stage_model_plays_each_style_differently_at_the_players_pace():
    """Musical effect on the trained stage model: the style changes which notes the answer picks; its
    pace and register stay the player's, which the duet measures from the phrase (a style with its own
    pace is what benchmarks/stage_styles.py's "own habits" rows measure)."""
    if not STAGE.exists():
        pytest.skip(f"{STAGE.name} is not shipped: styles cannot be heard apart")
    answers = {}
    for style in ctl.STYLES:
        generator = build_generator(str(STAGE), 3)
        settings = ContinuationSettings(tempo_bpm=100, phrase_end_ms=400, answer_notes=48, answer_beats=80,
                                        style=style)
        duet = Duet(generator, settings, FakeClock())
        duet.perform(MELODY, 0)
        answers[style] = duet.answer(0)
    # same seed, same phrase: only the style differs. The whole answers, not their first 16 notes: with the
    # key pull (engine/continuation.py) irish and fiddle began with the same 16 (then 21 of 48 differ)
    pitches = {s: tuple(n[2] for n in notes) for s, notes in answers.items()}
    assert len(set(pitches.values())) == len(ctl.STYLES), pitches
    phrase_mean = np.mean([67, 71, 74, 72, 71, 69, 67])
    for style, notes in answers.items():
        assert float(np.median(np.diff([n[0] for n in notes]))) == pytest.approx(0.3), style  # the phrase's 300 ms
        assert abs(np.mean([n[2] for n in notes]) - phrase_mean) < 5, style


def test_style_guidance_from_the_patch_reaches_the_duet_its_critic_and_the_game_voices(stage_model):
    from realtime.modes import _duet_generator

    duet = compile_patch(parse_patch({"engine": {"style": "irish"}, "critic": {"candidates": 4},
                                      "model": {"name": str(stage_model), "style_guidance": 2.0}}, "d.toml"))
    generator = _duet_generator(duet)
    assert generator.runner.guidance == 2.0 and generator.critic.runner.guidance == 2.0
    generator.reset()
    ctl.set_one_hot(generator.runner.controls[0], generator.runner.control_index, "style_", "irish")
    notes = generator.generate(12)  # the critic's K guided candidates grown from the guided stream's state
    assert len(notes) == 12 and all(0 <= t.pitch < 128 for t in notes)
    raw = _game_patch(stage_model)
    raw["model"]["style_guidance"] = 2.0
    settings = compile_patch(parse_patch(raw, "g.toml"))
    clock = FakeClock(1_000_000_000)
    output = MemoryOutput(clock)
    mode, scheduler, _ = build_game_mode(settings, clock, output, raw_send=lambda data: None)
    assert mode.bank.runner.guidance == 2.0
    engine = Engine(mode, clock, [], scheduler, poll_ms=5)
    mode.start(clock.now_ns())
    engine.loop(mode.tempo.ns_at(16.5))  # 16 beats: the untrained graph's random weights play sparsely
    engine.close()
    assert sum(1 for _, m in output.sent if m.velocity) >= 8 and len(output.notes) == 0  # played; none left on
