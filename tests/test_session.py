"""Sessions built as `realtime run` builds them (realtime/session.py), on memory ports, for every mode."""

from __future__ import annotations

from dataclasses import replace

import pytest

from realtime.app import LiveEngine
from realtime.clock import FakeClock, SystemClock
from realtime.engine.game import INBOX_LIMIT, GameMessage
from realtime.errors import ModelFileError, PortError
from realtime.model.modelfile import models_dir
from realtime.patch import load_patch
from realtime.patchports import MemoryPorts

PATCHES = models_dir().parent / "patches"


@pytest.fixture(scope="module", params=["duet", "game"])
def patch(request):
    return load_patch(PATCHES / f"{request.param}.toml")


class _Watched(MemoryPorts):
    """Memory ports that log what opens, and can refuse to open the inputs (a busy port, say)."""

    def __init__(self, refuse_inputs: bool = False) -> None:
        super().__init__()
        self.opened: list[str] = []
        self.refuse_inputs = refuse_inputs

    def open_outputs(self, clock, voices=()):
        self.opened.append("outputs")
        return super().open_outputs(clock, voices)

    def open_inputs(self, clock, raw_midi=None) -> None:
        if self.refuse_inputs:
            raise PortError("the keyboard is busy")
        self.opened.append("inputs")
        super().open_inputs(clock, raw_midi)


def test_a_model_that_cannot_load_opens_no_port_in_either_mode(patch, tmp_path):
    shipped = models_dir() / f"{patch.model.name}.onnx"
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(shipped.read_bytes()[:1000])
    broken.with_suffix(".json").write_text(shipped.with_suffix(".json").read_text())
    ports = _Watched()
    with pytest.raises(ModelFileError, match="broken.onnx"):
        LiveEngine(replace(patch, model=replace(patch.model, name=str(broken))), FakeClock(0), ports)
    assert ports.opened == []


def test_a_port_that_fails_to_open_closes_the_ones_already_open(patch):
    ports = _Watched(refuse_inputs=True)
    with pytest.raises(PortError, match="busy"):
        LiveEngine(patch, FakeClock(0), ports)
    assert ports.opened == ["outputs"] and ports.recorder.closed


def test_the_status_line_is_the_modes_own_and_drops_count_the_modes_inbox(patch):
    live = LiveEngine(patch, FakeClock(1_000_000_000), MemoryPorts())
    try:
        line = live.status()
        listening = live.listener.snapshot(live.clock.now_ns()).line()  # every mode's line ends with it
        assert listening.startswith("chord ") and line.endswith(" | misses 0 | " + listening), line
        line = line[:-len(" | " + listening)]
        if patch.engine.mode == "game":
            first = patch.game.initial_state or patch.game.states[0].name
            assert line.startswith(f"out 0 | section {first} | bar - | {patch.engine.tempo_bpm:.0f} BPM | layers "), line
            for _ in range(INBOX_LIMIT + 7):  # a game flooding the engine between two ticks
                live.mode.post(GameMessage("param", "intensity", 0.5), live.clock.now_ns())
            assert live.dropped() == 7
        else:
            assert line == "in 0 | out 0 | phrases 0 | style - | misses 0", line  # stage-lstm: no style asked
            assert live.dropped() == 0
    finally:
        live.stop()
    assert live.ports.held_at_close == set()


@pytest.mark.parametrize("autostart", [True, False])
def test_starting_a_game_session_starts_its_transport_only_with_autostart(autostart):
    patch = load_patch(PATCHES / "game.toml")
    patch = replace(patch, game=replace(patch.game, autostart=autostart))
    with LiveEngine(patch, SystemClock(), MemoryPorts()) as live:
        assert not live.mode.running
        live.start()
        assert live.mode.running is autostart
