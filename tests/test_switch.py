"""Modes switched live (realtime/engine/switch.py): on the next bar of the player's beat, every note of the old
mode ended first; by name (/mode) or program change; bad requests and bad patches refused in one line."""

from __future__ import annotations

import pytest
from test_listen import MS, tune

from realtime.bench.performance import TempoMap, perform
from realtime.clock import FakeClock
from realtime.engine.continuation import Continuation
from realtime.engine.engine import Engine
from realtime.engine.status import measure
from realtime.engine.switch import ModeSwitch
from realtime.errors import PatchError
from realtime.events import ModeRequest, NoteMessage
from realtime.io.ports import MemoryInput, MemoryOutput, MidiParser
from realtime.listen import Listener
from realtime.model.generator import Generator, ModelRunner
from realtime.model.sampling import Sampler
from realtime.patch import compile_patch, parse_patch
from realtime.scheduler import Scheduler
from realtime.settings import ContinuationSettings, ListenSettings

BPM = 100.0
BEAT_NS = 60e9 / BPM


def _rig(shipped_model):
    """Two duets (as two named modes) over one scheduler and one listener, in an engine on a fake clock."""
    clock = FakeClock()
    keyboard, output = MemoryInput(clock), MemoryOutput(clock)
    scheduler = Scheduler(output, late_tolerance_ns=3 * MS)
    listener = Listener(ListenSettings(), tempo_bpm=BPM)
    settings = ContinuationSettings(tempo_bpm=BPM, answer_notes=24, answer_beats=16)
    modes = {}
    for i, name in enumerate(("first", "second")):
        generator = Generator(ModelRunner(shipped_model), Sampler(3 + i, 0.9, 0.92))
        generator.reset()
        modes[name] = Continuation(generator, scheduler, settings, clock=clock, listener=listener)
    switch = ModeSwitch(modes, "first", scheduler)
    engine = Engine(switch, clock, [keyboard], scheduler, listener=listener)
    return clock, keyboard, output, switch, engine, listener


def _play(clock, keyboard, engine, events, until_ns: int) -> None:
    while clock.now_ns() < until_ns:
        clock.advance_ms(1)
        while events and events[0][0] <= clock.now_ns():
            keyboard.play(events[0][1].pitch, events[0][1].velocity)
            events.pop(0)
        engine.tick()


def test_a_switch_waits_for_the_bar_line_and_ends_every_note_of_the_old_mode(shipped_model):
    clock, keyboard, output, switch, engine, listener = _rig(shipped_model)
    events = perform(tune(12), TempoMap(((0.0, BPM),)), origin_ns=MS)
    phrase_end = events[-1][0]
    _play(clock, keyboard, engine, events, phrase_end + int(2.5 * BEAT_NS))  # the answer is playing
    assert switch.active.answering and output.held, "the duet should be answering with a note sounding"
    tempo = listener.snapshot(clock.now_ns()).tempo
    assert tempo.bpm is not None and abs(tempo.bpm - BPM) < 5, tempo

    asked_ns = clock.now_ns()
    engine._inbox.append((ModeRequest(name="second"), asked_ns))  # as an input's callback hands it over
    engine.tick()
    bar_ns = switch.switch_at_ns
    assert bar_ns is not None and switch.pending == "second"
    bar = 4 * tempo.ns_per_beat
    assert asked_ns <= bar_ns <= asked_ns + bar + MS, "the switch is on the next bar line, within a bar"
    assert abs(((bar_ns - tempo.anchor_ns) / bar) - round((bar_ns - tempo.anchor_ns) / bar)) < 1e-6, "on a bar line"
    assert switch.status_fields(measure(switch.scheduler, 0, 0, 0), asked_ns)[0] == "mode first -> second at the bar"

    sent_before = len(output.sent)
    _play(clock, keyboard, engine, [], bar_ns - MS)
    assert switch.active_name == "first", "nothing changes before the bar"
    assert len(output.sent) > sent_before or output.held, "the old mode plays on until the bar"
    _play(clock, keyboard, engine, [], bar_ns + 5 * MS)
    assert switch.active_name == "second" and switch.switches == 1
    assert output.held == set(), f"notes of the old mode still sounding after the switch: {output.held}"
    assert not switch.modes["first"].answering and not switch.scheduler.planned(), "the old mode's plan is dropped"

    # the new mode plays: a phrase after the switch gets its answer, and every note of it ends at the stop
    events = perform(tune(6), TempoMap(((0.0, BPM),)), origin_ns=clock.now_ns() + BEAT_NS)
    _play(clock, keyboard, engine, events, clock.now_ns() + int(12 * BEAT_NS))
    answer = [t for t, m in output.sent if m.is_on and t > bar_ns + BEAT_NS]
    assert answer, "the second mode never answered"
    engine.close()
    assert output.held == set()


def test_asked_back_before_the_bar_it_stays_and_bad_requests_are_refused_in_one_line(shipped_model):
    clock, keyboard, output, switch, engine, listener = _rig(shipped_model)
    _play(clock, keyboard, engine, perform(tune(8), TempoMap(((0.0, BPM),)), origin_ns=MS), int(6 * BEAT_NS))
    switch.request_mode(ModeRequest(name="second"), clock.now_ns())
    switch.request_mode(ModeRequest(program=0), clock.now_ns())  # program change 0: the first mode again
    assert switch.pending is None and switch.switch_at_ns is None
    switch.request_mode(ModeRequest(name="game"), clock.now_ns())
    assert switch.last_error == "/mode 'game': not one of this patch's [engine] modes (first, second)"
    switch.request_mode(ModeRequest(program=7), clock.now_ns())
    assert switch.refused == 2 and "program change 7" in switch.last_error and "\n" not in switch.last_error
    assert switch.active_name == "first" and switch.switches == 0


def test_without_a_tempo_there_is_no_bar_and_the_switch_is_at_once(shipped_model):
    clock, keyboard, output, switch, engine, listener = _rig(shipped_model)
    clock.advance_ms(10)
    switch.request_mode(ModeRequest(program=1), clock.now_ns())
    assert switch.switch_at_ns == clock.now_ns()
    engine.tick()
    assert switch.active_name == "second"


def test_a_program_change_on_midi_is_a_mode_request_and_a_session_of_one_mode_ignores_it():
    parser = MidiParser(accept_clock=False, warn=print)
    heard = []
    parser.listener = lambda message, at_ns: heard.append(message)
    parser.dispatch(bytes([0xC3, 2]), 0, "keys")
    parser.dispatch(bytes([0xC0, 200]), 0, "keys")  # a data byte over 127: malformed, dropped
    assert heard == [ModeRequest(program=2)] and parser.counts["malformed"] == 1

    clock = FakeClock()
    output = MemoryOutput(clock)
    scheduler = Scheduler(output)

    class Silent:
        last_error = None

        def tick(self, now_ns): ...

        def next_deadline_ns(self): return None

    engine = Engine(Silent(), clock, [], scheduler)
    engine._inbox.append((ModeRequest(program=1), 0))
    engine.tick()
    assert engine.mode_requests_ignored == 1


@pytest.mark.parametrize("engine_table, problem", [
    ('mode = "continuation"\nmodes = ["continuation", "game"]', "modes: 'game' cannot be switched live"),
    ('mode = "continuation"\nmodes = ["continuation", "continuation"]', "modes lists a mode twice"),
    ('mode = "continuation"\nmodes = ["nonsense"]', "modes: 'nonsense' cannot be switched live"),
    ('mode = "continuation"\nbeats_per_bar = 0', "beats_per_bar must be between 1 and 16"),
    ('mode = "continuation"\nmodes = "continuation"', "modes must be a list of strings"),
])
def test_bad_modes_in_a_patch_are_refused_in_one_line(engine_table, problem):
    import tomllib

    with pytest.raises(PatchError) as caught:
        parse_patch(tomllib.loads(f"[engine]\n{engine_table}\n"), "stage.toml")
    assert problem in str(caught.value) and "stage.toml" in str(caught.value) and "\n" not in str(caught.value)


def test_a_patch_without_modes_runs_its_mode_alone():
    settings = compile_patch(parse_patch({"engine": {"mode": "continuation"}}, "duet.toml"))
    assert settings.modes == ("continuation",)


def test_accompany_to_harmonize_switches_on_the_accompaniments_bar_and_ends_every_accompany_note():
    from realtime.bench.accompaniment import offline, strikes

    raw = {"engine": {"mode": "accompany", "modes": ["accompany", "harmonize"]}, "harmonize": {"channel": 5},
           "listen": {"zone": "left"}, "midi": {"enabled": False}, "osc": {"enabled": False}}
    bar_s = 4 * 60 / 84
    live = offline(parse_patch(raw, "stage.toml"), strikes(("C", "Am"), 84.0, held_at_stop=True), 1.6 * bar_s)
    switch, recorder, clock = live.mode, live.ports.recorder, live.clock
    try:
        accompany = switch.modes["accompany"]
        assert switch.active_name == "accompany" and {c for c, _ in recorder.held} == {1, 2}, recorder.held
        live.engine._hear(ModeRequest(name="harmonize"), clock.now_ns())
        live.engine.tick()
        bar_ns = switch.switch_at_ns
        assert bar_ns == accompany.grid.next_bar_ns(clock.now_ns()) and bar_ns > clock.now_ns(), \
            "the switch waits for the accompaniment's own next bar line (the listener has no tempo from chords)"
        asked = len(recorder.sent)
        live.engine.loop(bar_ns - MS)
        assert switch.active_name == "accompany" and [m for _, m in recorder.sent[asked:] if m.is_on], \
            "the accompaniment plays on up to the bar"
        live.engine.loop(bar_ns + 5 * MS)
        assert switch.active_name == "harmonize" and switch.switches == 1
        assert recorder.held == set(), f"accompany notes still sounding after the switch: {recorder.held}"
        mark = len(recorder.sent)
        at = clock.now_ns() + 100 * MS
        clock.call_at(at, lambda: live.ports.keyboard.play(76, 90))  # a melody note: the harmonizer voices it
        live.engine.loop(at + 2 * bar_s * 1e9)
        later = recorder.sent[mark:]
        assert later and {m.channel for _, m in later} == {4}, "only harmony after the switch, on its channel"
    finally:
        live.stop()
    assert live.ports.held_at_close == set()
