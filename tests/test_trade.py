"""mode = "trade" on a fake clock and memory ports, through the engine loop as `realtime run` builds it: the
player plays a D major line in turns at a tempo the patch does not know, the engine answers on its own channel
for as many bars, its first note on the bar line, nothing starting in the player's bars and every note ended
by the bar line where the player's turn begins; a cut-in silences it at once and starts the player's turn; a
silent turn waits (or plays on); stop, a switch and the player's all-notes-off end every note; the [trade]
section, its README table and the shipped patch."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime.bench.trading import D_MAJOR, Script, engine_turns, judge, offline, trading
from realtime.engine.bargrid import BarGrid
from realtime.errors import PatchError
from realtime.events import ControlChange, ModeRequest
from realtime.patch import compile_patch, load_patch, parse_patch
from realtime.settings import ranges_table_markdown
from realtime.stagesettings import TRADE_RANGES

ROOT = Path(__file__).resolve().parents[1]
BASE = {"engine": {"mode": "trade", "tempo_bpm": 100}, "midi": {"enabled": False}, "osc": {"enabled": False}}
START = 0.5  # s: the player's first note on the fake clock (trading.offline)
ENGINE = 1  # 0-based: [trade] channel 2


def _patch(**sections):
    raw = {name: dict(table) for name, table in BASE.items()}
    for name, table in sections.items():
        raw.setdefault(name, {}).update(table)
    return parse_patch(raw, "test.toml")


def _run(script: Script, **sections):
    live, heard = offline(_patch(**sections), script, START)
    return live, heard, judge(heard, script, ENGINE)


def _ons(heard, channel=ENGINE):
    return [at for at, data in heard if data[0] == 0x90 | channel and data[2]]


@pytest.mark.parametrize("bpm", [72.0, 84.0, 132.0])
def test_the_engine_answers_on_the_bar_line_and_ends_on_the_players_next(bpm):
    script = trading(bpm, 2, 3)  # the patch says 100
    live, heard, result = _run(script, trade={"bars": 2})
    try:
        assert result["turns_answered"] == 3 and result["engine_notes"] >= 12, result
        assert result["bar_line_abs_error_ms"]["max"] <= 2.0, result  # the tempo and phase heard, not the patch's
        assert result["notes_outside_engine_bars"] == 0 and result["overplayed_bars"] == [], result
        assert result["latest_end_past_bar_line_ms"] <= 2.0, result
        assert result["channels"] == [ENGINE] and result["held_at_end"] == []
        assert abs(live.mode.grid.bpm - bpm) < 0.5 and live.mode.grid.source == "listener", live.mode.grid.bpm
        beat_s = 60 / bpm
        for first, stop in engine_turns(script):  # onsets on sixteenths of the player's beat, none in its bars
            turn = [t for t in _ons(heard) if first * script.bar_s - 0.02 <= t < stop * script.bar_s]
            assert turn, (first, stop)
            for t in turn:
                sixteenths = (t - first * script.bar_s) / beat_s * 4
                assert abs(sixteenths - round(sixteenths)) < 0.01, (t, sixteenths)
    finally:
        live.stop()
    assert live.ports.held_at_close == set()


def test_the_engine_continues_the_players_bars_in_their_key():
    script = trading(84.0, 4, 2)
    live, heard, result = _run(script)
    live.stop()
    assert result["key_share"] == 1.0, result  # the listener's key (D major) limits the pitches
    live, heard, free = _run(script, trade={"follow_key": False})
    live.stop()
    assert free["key_share"] is not None and free["engine_notes"] > 0  # the model alone; measured, not ruled


def test_a_cut_in_silences_the_engine_at_once_and_that_bar_is_the_players():
    script = trading(84.0, 2, 2, cut_in=True)  # the player comes back one bar into the engine's second turn
    live, heard, result = _run(script, trade={"bars": 2})
    try:
        assert live.mode.cut_ins == 1
        assert result["cut_in_silence_ms"] and max(result["cut_in_silence_ms"]) <= 1.0, result
        assert result["notes_started_after_a_cut_in"] == 0 and result["notes_outside_engine_bars"] == 0, result
        # the engine answers the cut-in turn two bars after it began, on that bar line
        assert result["turns_answered"] == 3 and result["bar_line_abs_error_ms"]["max"] <= 2.0, result
        cut_bar = script.player_bars[-1][0]
        assert not [t for t in _ons(heard) if cut_bar * script.bar_s <= t < (cut_bar + 2) * script.bar_s - 0.02]
    finally:
        live.stop()


def test_a_cut_in_on_the_last_half_beat_of_a_bar_is_a_pickup_into_the_next():
    script = trading(84.0, 2, 1)
    live, heard = offline(_patch(trade={"bars": 2}), script, START, until_s=2.5 * script.bar_s)
    try:
        mode, bar_ns = live.mode, script.bar_s * 1e9
        assert mode.owner == "engine" and mode.turn_bar == 2
        pickup_ns = int((START + 2.9 * script.bar_s) * 1e9)  # beat 4.6 of the engine's first bar
        live.clock.call_at(pickup_ns, lambda: live.ports.keyboard.play(74, 90))
        live.engine.loop(pickup_ns + 1_000_000)
        assert mode.owner == "player" and mode.turn_bar == 3 and mode.cut_ins == 1
        assert abs(mode.grid.time_of_bar(3) - (START * 1e9 + 3 * bar_ns)) < 2e6
    finally:
        live.stop()


def test_a_silent_turn_waits_and_the_next_note_starts_a_new_exchange():
    script = trading(84.0, 2, 1)
    live, heard = offline(_patch(trade={"bars": 2}), script, START, until_s=8.3 * script.bar_s)
    try:
        mode, recorder = live.mode, live.ports.recorder  # the player's bars 4-5 stayed silent
        assert mode.engine_turns == 1 and mode.waits == 1 and mode.owner is None
        assert not [m for at, m in recorder.sent if m.is_on and at > (START + 4 * script.bar_s) * 1e9]
        assert "trade: waiting for you" in live.status()
        again = START + 8.3 * script.bar_s  # off the old bars: the new exchange's bar 1 begins with this note
        for i in range(12):
            at = int((again + i * 60 / 84 / 2) * 1e9)
            live.clock.call_at(at, lambda p=62 + i % 5: live.ports.keyboard.play(p, 90))
            live.clock.call_at(at + 200_000_000, lambda p=62 + i % 5: live.ports.keyboard.play(p, 0))
        live.engine.loop(int((again + 2.1 * script.bar_s) * 1e9))
        answer = [at / 1e9 for at, m in recorder.sent if m.is_on and at > again * 1e9]
        assert answer and abs(answer[0] - (again + 2 * script.bar_s)) < 0.003, (answer[:1], again + 2 * script.bar_s)
    finally:
        live.stop()


def test_on_silence_play_plays_on_through_a_silent_turn():
    script = trading(84.0, 2, 1)
    live, heard = offline(_patch(trade={"bars": 2, "on_silence": "play"}), script, START, until_s=8.5 * script.bar_s)
    try:
        assert live.mode.engine_turns >= 2 and live.mode.waits == 0
        late = [at for at, m in live.ports.recorder.sent if m.is_on and at > (START + 6 * script.bar_s) * 1e9]
        assert late, "the engine played its turn after the silent one"
    finally:
        live.stop()


def test_starts_engine_plays_the_first_turn_at_once_and_then_listens():
    # the engine's bar 0 begins 20 ms (lookahead_ms; memory ports have no lead) after the mode began at 0;
    # the player comes in on its bar 1, and is answered on bar 2
    live, heard = offline(_patch(trade={"bars": 1, "starts": "engine"}), Script(100.0, 1, ((1, 2),)), 0.02)
    try:
        ons = [at / 1e9 for at, m in live.ports.recorder.sent if m.is_on]
        assert ons and ons[0] < 0.1, ons[:2]  # from the moment the mode began, at the patch's 100 BPM
        first_turn = [at / 1e9 for at, m in live.ports.recorder.sent if at / 1e9 < 2.42 - 1e-3]
        assert first_turn and max(first_turn) <= 2.42, "its bar ended on the bar line"
        assert live.mode.engine_turns == 2 and live.mode.cut_ins == 0  # its own bar, then the answer
        assert [at / 1e9 for at, m in live.ports.recorder.sent if m.is_on and at / 1e9 > 2.42][0] == \
            pytest.approx(4.82, abs=2e-3)
    finally:
        live.stop()


@pytest.mark.parametrize("how", ["stop", "all notes off", "switch"])
def test_stop_silence_and_a_switch_end_every_note(how):
    script = trading(84.0, 4, 1)
    modes = {"engine": {"modes": ["trade", "harmonize"]}, "harmonize": {"channel": 5}} if how == "switch" else {}
    live, heard = offline(_patch(**modes), script, START, until_s=5.5 * script.bar_s)  # the engine's second bar
    recorder = live.ports.recorder
    try:
        assert recorder.held, "the engine is playing"
        now = live.clock.now_ns()
        if how == "stop":
            live.stop()
        elif how == "all notes off":
            live.engine._hear(ControlChange(123, 0), now)  # as the keyboard's input hands it over
            live.engine.tick()
        else:
            live.engine._hear(ModeRequest("harmonize"), now)
            live.engine.loop(now + int(script.bar_s * 1e9))
            assert live.mode.active_name == "harmonize"
        assert recorder.held == set(), recorder.held
        if how != "stop":  # and it stays silent: the exchange is over (the switch: another mode plays)
            now = live.clock.now_ns()
            live.engine.loop(now + int(script.bar_s * 1e9))
            assert not [m for at, m in recorder.sent if m.is_on and at > now and m.channel == ENGINE]
    finally:
        live.stop()
    assert live.ports.held_at_close == set()


def test_the_status_line_shows_whose_turn_and_the_bar():
    script = trading(84.0, 4, 1)
    live, _ = offline(_patch(), script, START, until_s=5.5 * script.bar_s)
    try:
        line = live.status()
        assert " | trade: engine bar 2/4 | engine turns 1 | 84.0 BPM from listener | notes " in line, line
        live.engine.loop(int((START + 8.5 * script.bar_s) * 1e9))
        assert " | trade: your bar 1/4 | " in live.status() and " | cut-ins 0" in live.status()
    finally:
        live.stop()


# --- the bars ---------------------------------------------------------------------------------------------
def test_the_bars_are_counted_from_the_first_note_at_the_players_tempo_and_a_wrong_lock_waits_a_bar():
    grid = BarGrid(600e6, 4)  # the patch's 100 BPM
    grid.start(1_000_000_000)
    assert grid.time_of_bar(1) == 3_400_000_000
    beat = 60e9 / 84
    grid.follow(beat, int(1_000_000_000 + 5 * beat + 3e6), 5_000_000_000)  # locked 5 beats in, 3 ms later
    assert grid.source == "listener" and abs(grid.bpm - 84) < 1e-6
    assert abs(grid.time_of_bar(1) - (1_003_000_000 + 4 * beat)) < 2, "bar 1 is four of the player's beats on"
    grid.follow(beat / 2, int(1_003_000_000 + 10 * beat), 6_000_000_000)  # eighths: the same level
    assert abs(grid.bpm - 84) < 1e-6
    grid.follow(60e9 / 54, int(1_003_000_000 + 12 * beat), 7_000_000_000)  # a wrong lock, for a moment
    assert abs(grid.bpm - 84) < 1e-6 and abs(grid.time_of_bar(2) - (1_003_000_000 + 8 * beat)) < 2
    grid.follow(60e9 / 54, int(1_003_000_000 + 12 * beat), 7_000_000_000 + int(4 * beat))  # unchanged: same pair
    grid.follow(60e9 / 54.2, int(1_003_000_000 + 13 * beat), 7_000_000_000 + int(4 * beat) + 1)  # it stood a bar
    assert abs(grid.bpm - 108.4) < 0.01
    assert grid.next_bar_ns(grid.time_of_bar(5)) == grid.time_of_bar(5)


# --- the patch -------------------------------------------------------------------------------------------
def test_the_shipped_patch_compiles_to_the_trade_mode():
    patch = load_patch(ROOT / "patches" / "trade.toml")
    settings = compile_patch(patch)
    assert settings.mode == "trade" and settings.trade.bars == 4 and settings.trade.channel == 1
    assert settings.trade.starts == "player" and settings.trade.on_silence == "wait"
    assert compile_patch(_patch(trade={"channel": 1})).trade.channel == 0  # the player's, when written


@pytest.mark.parametrize("table, line", [
    ({"starts": "band"}, "x.toml: [trade] starts must be 'player' or 'engine', got 'band'"),
    ({"on_silence": "rest"}, "x.toml: [trade] on_silence must be 'wait' or 'play', got 'rest'"),
    ({"bars": 0}, "x.toml: [trade] bars must be between 1 and 16, got 0"),
    ({"bars": 2.5}, "x.toml: [trade] bars must be a whole number, got 2.5"),
    ({"channel": 17}, "x.toml: [trade] channel must be between 1 and 16, got 17"),
    ({"follow_key": "yes"}, "x.toml: [trade] follow_key must be true or false"),
    ({"swing": 0.5}, "x.toml: [trade] unknown key 'swing'"),
])
def test_a_bad_trade_section_is_refused_in_one_line(table, line):
    raw = {name: dict(t) for name, t in BASE.items()} | {"trade": table}
    with pytest.raises(PatchError) as info:
        parse_patch(raw, "x.toml")
    assert str(info.value).startswith(line) and "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize("name", list(TRADE_RANGES))
def test_every_trade_value_accepts_exactly_its_range(name):
    r = TRADE_RANGES[name]
    step = 1 if r.unit in ("MIDI channel", "bars", "onsets per beat") else 0.01
    for inside in (r.low, r.high):
        _patch(trade={name: int(inside) if step == 1 else inside})
    for outside in (r.low - step, r.high + step):
        with pytest.raises(PatchError, match=name):
            _patch(trade={name: int(outside) if step == 1 else outside})


def test_trade_is_a_stage_mode_and_the_readme_table_is_the_settings_table():
    assert compile_patch(_patch(engine={"modes": ["trade", "continuation"]})).modes == ("trade", "continuation")
    assert ranges_table_markdown(TRADE_RANGES) in (ROOT / "README.md").read_text()
    assert D_MAJOR == frozenset(pc % 12 for pc in (62, 64, 66, 67, 69, 71, 73))
