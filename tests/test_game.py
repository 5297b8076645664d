"""Game mode on a fake clock: sections at bar lines, stingers on beats, smoothing, layers, transport."""

from __future__ import annotations

import math

import numpy as np
import pytest

from realtime.clock import FakeClock
from realtime.engine.engine import Engine
from realtime.engine.game import GameMessage
from realtime.engine.gameosc import game_routes
from realtime.engine.gamesetup import build_game_mode
from realtime.errors import PatchError
from realtime.io.midiclock import START, STOP, TIMING_CLOCK
from realtime.io.oscaddress import AddressTable
from realtime.io.osccodec import Drop
from realtime.io.ports import MemoryOutput
from realtime.model.modelfile import models_dir
from realtime.model.sampling import key_pitch_classes
from realtime.patch import compile_patch, load_patch, parse_patch

GAME_MODEL = "game-lstm.int8"
LOOKAHEAD_NS = 60_000_000
MODEL_FOR_TESTS = None  # the patch's model


@pytest.fixture(scope="module")
def patch():
    assert (models_dir() / f"{GAME_MODEL}.onnx").exists(), "the shipped game model is missing"
    return load_patch(models_dir().parent / "patches" / "game.toml")


class Rig:
    """A game mode on a fake clock with memory ports; `run_until` runs the engine's loop (a tick at least every 5 ms)."""

    def __init__(self, patch, tick_ms: float = 5.0) -> None:
        self.clock = FakeClock(1_000_000_000)
        self.out = MemoryOutput(self.clock)
        self.raw: list[tuple[int, bytes]] = []
        self.mode, self.scheduler, self.clock_scheduler = build_game_mode(
            compile_patch(patch), self.clock, self.out, raw_send=lambda data: None,
            model=MODEL_FOR_TESTS)
        self.engine = Engine(self.mode, self.clock, [], self.scheduler, poll_ms=tick_ms)
        self.deadlines: list[tuple[int, object]] = []  # (deadline ns, message) as the output sent them
        self.scheduler.on_sent = lambda message, deadline, sent: self.deadlines.append((deadline, message))
        self.clock_scheduler.on_sent = lambda data, deadline, sent: self.raw.append((deadline, data))
        self.mode.start(self.clock.now_ns())

    def run_until(self, ns: int) -> None:
        if self.clock.now_ns() < ns:
            self.engine.loop(ns)

    def note_ons(self, channel: int | None = None, after_ns: int = 0):
        return [(t, m) for t, m in self.deadlines if m.velocity > 0 and t >= after_ns
                and (channel is None or m.channel == channel)]


def test_state_change_lands_exactly_on_the_next_bar_line(patch):
    rig = Rig(patch)
    tempo = rig.mode.tempo
    rig.run_until(tempo.ns_at(5.3))  # somewhere in bar 1 (calm: pads and melody; no bass below 0.3)
    arrival = rig.clock.now_ns()
    expected_ns = tempo.ns_at(8.0)  # the first bar line after arrival + lookahead, at calm's tempo
    assert tempo.beat_at(arrival + LOOKAHEAD_NS) < 8.0
    rig.mode.post(GameMessage("state", "combat"), arrival)
    rig.mode.post(GameMessage("param", "intensity", 0.9), arrival)
    rig.run_until(arrival + 6_000_000_000)
    name, bar_beats, bar_ns = rig.mode.transitions[-1]
    assert (name, bar_beats, bar_ns) == ("combat", 8.0, expected_ns)
    before = [(t, m) for t, m in rig.deadlines if t < bar_ns]
    after = rig.note_ons(after_ns=bar_ns)
    # every note of the old section has ended by the bar line; the new one starts on it, every layer at once
    sounding = set()
    for t, m in before:
        (sounding.add if m.velocity else sounding.discard)((m.channel, m.pitch))
    offs_at_bar = {(m.channel, m.pitch) for t, m in rig.deadlines if t == bar_ns and m.velocity == 0}
    assert sounding <= offs_at_bar
    first_by_channel = {}
    for t, m in after:
        first_by_channel.setdefault(m.channel, t)
    assert first_by_channel == {0: bar_ns, 1: bar_ns, 2: bar_ns}  # pads, bass (entered), melody
    assert rig.note_ons(channel=1)[0][0] == bar_ns  # the bass was silent before (intensity 0.2 < 0.3)
    combat = key_pitch_classes("D harmonic-minor")
    assert all(m.pitch % 12 in combat for t, m in after if m.channel != 9)
    assert rig.mode.tempo.tempo_bpm == 132.0 and rig.scheduler.late_count == 0


def test_stinger_starts_on_the_next_beat(patch):
    rig = Rig(patch)
    tempo = rig.mode.tempo
    rig.run_until(tempo.ns_at(2.5))
    arrival = rig.clock.now_ns()
    rig.mode.post(GameMessage("event", "hit"), arrival)
    rig.run_until(arrival + 3_000_000_000)
    stinger = rig.note_ons(channel=9)
    beat = math.floor(tempo.beat_at(arrival + LOOKAHEAD_NS)) + 1
    assert [t for t, _ in stinger] == [tempo.ns_at(beat + k * 0.25) for k in range(4)]
    tonic = 62  # D, nearest to base 74 is 74
    assert [m.pitch for _, m in stinger] == [74, 77, 81, 86] and tonic % 12 == 74 % 12
    assert rig.mode.stingers == [("hit", float(beat), tempo.ns_at(beat))]


def test_parameter_glides_with_the_patch_time_constant(patch):
    rig = Rig(patch)
    tau_ns = int(patch.game.smoothing_ms * 1e6)
    arrival = rig.clock.now_ns() + 500_000_000
    rig.run_until(arrival)
    intensity = rig.mode.params["intensity"]
    start = intensity.value_at(arrival)
    rig.mode.post(GameMessage("param", "intensity", 1.0), arrival)
    rig.run_until(arrival + 1)
    assert intensity.value_at(arrival) == pytest.approx(start)
    assert intensity.value_at(arrival + tau_ns) == pytest.approx(start + (1 - start) * (1 - math.exp(-1)), abs=1e-9)
    assert intensity.value_at(arrival + 5 * tau_ns) == pytest.approx(1.0, abs=0.01)
    # the melody's density control follows the smoothed value at each note, not the raw jump
    rig.run_until(arrival + tau_ns)
    melody = rig.mode.voices[2]
    density = rig.mode.bank.controls[2, rig.mode.control_index["density"]]
    low, high = 0.75, 5.0
    assert low + (high - low) * start < density < high
    assert melody.settings.name == "melody"


def test_a_layer_enters_at_a_bar_line_when_its_parameter_crosses(patch):
    rig = Rig(patch)
    tempo = rig.mode.tempo
    rig.run_until(tempo.ns_at(1.5))
    assert not rig.mode.voices[1].active  # bass waits for intensity 0.3
    arrival = rig.clock.now_ns()
    rig.mode.post(GameMessage("param", "intensity", 0.8), arrival)
    rig.run_until(tempo.ns_at(9))
    first_bass = rig.note_ons(channel=1)[0][0]
    assert tempo.beat_at(first_bass) == pytest.approx(4.0, abs=1e-6)  # the bar line after the crossing
    assert rig.mode.transitions[-1][:2] == ("calm", 4.0)


def test_batched_stepping_and_transport(patch):
    rig = Rig(patch)
    rig.mode.post(GameMessage("param", "intensity", 1.0), rig.clock.now_ns())
    rig.run_until(rig.clock.now_ns() + 8_000_000_000)
    played = rig.mode.notes_out
    assert played > 30 and rig.mode.bank.steps < played  # several voices share a model call
    stop_at = rig.clock.now_ns()
    rig.mode.post(GameMessage("stop"), stop_at)
    rig.run_until(stop_at + 2_000_000_000)
    assert rig.out.held == set() and not any(m.velocity for t, m in rig.out.sent if t > stop_at)
    assert rig.raw[-1][1] == bytes([STOP])
    rig.mode.post(GameMessage("tempo", value=150.0), rig.clock.now_ns())
    start_at = rig.clock.now_ns()
    rig.mode.post(GameMessage("start"), start_at)
    rig.run_until(start_at + 2_000_000_000)
    assert rig.mode.tempo.tempo_bpm == 84.0  # calm's own tempo wins at the start of the section
    assert rig.mode.tempo.beat_at(start_at + LOOKAHEAD_NS) == 0.0
    starts = [t for t, data in rig.raw if data == bytes([START])]
    assert starts[-1] == start_at + LOOKAHEAD_NS
    pulses = [t for t, data in rig.raw if data == bytes([TIMING_CLOCK]) and t >= starts[-1]]
    assert pulses[0] == starts[-1] and np.allclose(np.diff(pulses[:24]), 60e9 / 84 / 24, atol=1)
    assert rig.note_ons(after_ns=start_at)[0][0] == start_at + LOOKAHEAD_NS


def test_on_a_fake_clock_the_engine_loop_sends_each_clock_pulse_at_its_moment(patch):
    rig = Rig(patch)
    lateness = []
    rig.clock_scheduler.on_sent = lambda data, deadline, sent: lateness.append(sent - deadline)
    rig.run_until(rig.clock.now_ns() + 2_000_000_000)
    assert len(lateness) > 40 and set(lateness) == {0}


def test_the_status_line_counts_bars_on_the_engine_clock(patch):
    from dataclasses import replace

    from realtime.app import LiveEngine

    quiet = replace(patch, midi=replace(patch.midi, enabled=False), synth=replace(patch.synth, kind="none"),
                    osc=replace(patch.osc, enabled=False, out_host=None))
    clock = FakeClock(1_000_000_000)
    live = LiveEngine(quiet, clock=clock)
    try:
        live.mode.start(clock.now_ns())
        clock.sleep_until(live.mode.tempo.ns_at(9.5))  # beat 9.5: bar 2 (0-based, 4 beats a bar)
        assert "| bar 2 |" in live.status()
    finally:
        live.stop()


def test_unknown_names_and_bad_values_change_nothing(patch):
    posted = []
    table = AddressTable()
    for address, spec, handler in game_routes(compile_patch(patch).game, lambda m, t: posted.append(m), lambda: 0):
        table.register(address, spec, handler)
    table.event("/game/param", "sf", ["intensity", 0.5])
    table.event("/game/state", "s", ["combat"])
    table.event("/transport/tempo", "f", [120.0])
    assert [m.kind for m in posted] == ["param", "state", "tempo"]
    for address, tags, values, kind, words in [
        ("/game/param", "sf", ["loudness", 0.5], "unknown-name", "loudness"),
        ("/game/state", "s", ["boss"], "unknown-name", "calm, tense, combat, victory"),
        ("/game/event", "s", ["explode"], "unknown-name", "hit, pickup"),
        ("/game/param", "sf", ["intensity", 1.5], "value", "outside"),
        ("/game/param", "ff", [1.0, 0.5], "type", "not a name"),
        ("/game/state", "i", [3], "type", "not a name"),
        ("/transport/tempo", "f", [900.0], "range", "outside"),
        ("/game/state", "s", ["a b"], "range", "letters"),
    ]:
        with pytest.raises(Drop) as info:
            table.event(address, tags, values)
        assert info.value.kind == kind and words in info.value.detail
    assert len(posted) == 3


def test_game_patch_errors_name_the_key():
    base = {"engine": {"mode": "game"}, "game": {"voices": {"lead": {}}, "states": {"a": {"voices": ["lead"]}}}}
    parse_patch(base, "x.toml")
    cases = [
        ({"engine": {"mode": "game"}}, "no [game] section"),
        ({"game": {"states": {"a": {"voices": ["ghost"]}}, "voices": {"lead": {}}}}, "[game.states.a] voices ['ghost']"),
        ({"game": {"voices": {"lead": {"channel": 17}}, "states": {"a": {}}}}, "[game.voices.lead] channel"),
        ({"game": {"voices": {"lead": {"enter_param": "x"}}, "states": {"a": {}}}}, "enter_param 'x'"),
        ({"game": {"voices": {"lead": {}}, "states": {"a": {"key": "H major"}}}}, "[game.states.a] key"),
        ({"game": {"voices": {"lead": {}}, "states": {"a": {}}, "map": [{"param": "p", "control": "density"}]}},
         "param 'p'"),
        ({"game": {"voices": {"lead": {}}, "states": {"a": {}}, "params": {"p": 0.5},
                   "map": [{"param": "p", "control": "loudness"}]}}, "control must be one of"),
        ({"game": {"voices": {"lead": {}}, "states": {"a": {}}, "params": {"p": 0.5},
                   "map": [{"param": "p", "control": "density", "max": 50}]}}, "must lie in 0.0..8.0"),
        ({"game": {"voices": {"lead": {}}, "states": {"a": {}}, "smoothing": 3}}, "unknown key 'smoothing'"),
        ({"game": {"voices": {"lead": {}}, "states": {"a": {}}, "events": {"hit": {"notes": ["C"]}}}},
         "list of whole numbers"),
    ]
    for raw, words in cases:
        merged = {"engine": {"mode": "game"}} | raw
        with pytest.raises(PatchError) as info:
            parse_patch(merged, "x.toml")
        assert str(info.value).startswith("x.toml: ") and words in str(info.value), str(info.value)


def test_midi_clock_in_moves_the_tempo_only_on_the_engine_thread_and_cannot_crowd_out_the_game(patch):
    from dataclasses import replace

    from realtime.engine.game import CLOCK_ROOM

    rig = Rig(replace(patch, game=replace(patch.game, midi_clock_in=True)))
    pulse_ns = round(60e9 / 100 / 24)
    rig.mode.on_raw_midi(bytes([START]), rig.clock.now_ns())
    for _ in range(48):
        rig.clock.advance_ms(pulse_ns / 1e6)
        rig.mode.on_raw_midi(bytes([TIMING_CLOCK]), rig.clock.now_ns())
    assert rig.mode.tempo.tempo_bpm == 84.0, "the input's thread only queued the pulses"
    rig.engine.tick()
    assert rig.mode.tempo.tempo_bpm == pytest.approx(100.0, abs=0.01), "the tick followed them"
    for _ in range(3 * CLOCK_ROOM):  # a flood of clock bytes from a hostile or broken device
        rig.mode.on_raw_midi(bytes([TIMING_CLOCK]), rig.clock.now_ns())
    assert len(rig.mode.inbox) == CLOCK_ROOM and rig.mode.inbox_drops == 2 * CLOCK_ROOM
    rig.mode.post(GameMessage("state", "combat"), rig.clock.now_ns())
    assert rig.mode.inbox[-1][0] == GameMessage("state", "combat"), "the game still gets through"
