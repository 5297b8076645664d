"""The cockpit's live view, headless (Textual's pilot), over a fake-clock engine built from a patch."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from realtime.app import LiveEngine
from realtime.clock import FakeClock
from realtime.io.ports import MemoryInput, MemoryOutput
from realtime.patch import parse_patch
from realtime.taps import Taps
from realtime.view import Cockpit, chord_name, key_estimate

PATCH = {"engine": {"tempo_bpm": 120}, "continuation": {"phrase_end_ms": 300, "lookahead_ms": 1500,
                                                        "answer_notes": 12, "answer_beats": 12},
         "midi": {"enabled": False}, "osc": {"enabled": False}}


def fake_engine():
    clock = FakeClock(1_000_000_000)
    live = LiveEngine(parse_patch(PATCH, "view.toml"), clock=clock)
    heard = MemoryOutput(clock)
    live.output.outputs.append(heard)
    keys = MemoryInput(clock)
    keys.set_listener(live.engine._hear)
    live.generator.runner.warm_up()
    live.generator.reset()
    return live, clock, keys, heard


def play_phrase(live, clock, keys) -> None:
    for pitch in (60, 64, 67, 72, 67, 64):
        keys.play(pitch, 90)
        live.engine.tick()
        clock.advance_ms(150)
        keys.play(pitch, 0)
        live.engine.tick()
    clock.advance_ms(310)  # the phrase has ended: the answer is chosen, its first notes ahead
    live.engine.tick()


def roll(app) -> str:
    return str(app.query_one("#roll").content)


def test_the_view_shows_planned_notes_before_they_sound() -> None:
    live, clock, keys, heard = fake_engine()
    taps = Taps(live)
    play_phrase(live, clock, keys)

    async def scenario() -> None:
        app = Cockpit(live, taps, refresh_s=60)
        async with app.run_test(size=(140, 40)) as pilot:
            app.refresh_view()
            await pilot.pause()
            ahead = [m for d, m in live.scheduler.planned() if m.is_on and d > clock.now_ns()]
            assert ahead, "the engine has committed notes it has not played"
            screen = roll(app)
            assert "░" in screen and "█" in screen, "the plan ahead is drawn beside the player's notes"
            assert f"planned {len(ahead)} notes ahead" in str(app.query_one("#music").content)
            sounded = [m for _, m in heard.sent if m.is_on]
            assert len(sounded) == 1, "only the first answer note, due at the phrase end, has sounded yet"

            for _ in range(40):  # time passes: the planned notes sound and move left of the now line
                clock.advance_ms(50)
                live.engine.tick()
            app.refresh_view()
            await pilot.pause()
            assert len([m for _, m in heard.sent if m.is_on]) > len(sounded), "the planned notes sounded"
            assert "▓" in roll(app), "what it played is drawn as played"

            await pilot.press("q")
        assert not app.is_running

    asyncio.run(scenario())
    live.stop()
    assert heard.held == set(), "quitting ends every note"


def test_learn_from_the_view_binds_the_next_moved_controller() -> None:
    from realtime.events import ControlChange

    live, clock, keys, heard = fake_engine()
    taps = Taps(live)

    async def scenario() -> None:
        app = Cockpit(live, taps, refresh_s=60)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("l")  # the first control, temperature
            live.engine.tick()
            assert live.engine.learning == "temperature"
            live.engine._hear(ControlChange(21, 127), clock.now_ns())
            live.engine.tick()
            assert live.generator.sampler.temperature == 5.0, "cc 21 at full now sets the temperature"
            app.refresh_view()
            controls = str(app.query_one("#controls").content)
            assert "cc:21" in controls
            assert " blend " in controls and " key_pull " in controls  # every control shows its value
            assert [line.split()[-1] for line in controls.splitlines() if "key_pull" in line] == ["2"]

    asyncio.run(scenario())
    live.stop()


def test_chord_and_key_estimates() -> None:
    assert chord_name({60, 64, 67}) == "C"
    assert chord_name({57, 60, 64}) == "Am"
    assert chord_name({55, 59, 62, 65}) == "G7"
    assert key_estimate([67, 71, 74, 72, 71, 69, 67, 66, 67, 62, 59]) == "G major"
    assert key_estimate([57, 60, 64, 57, 59, 60, 62, 64, 65, 64, 57]) == "A minor"
