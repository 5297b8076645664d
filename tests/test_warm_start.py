"""The engine is warm before it listens: its ONNX session made and stepped and its sampler compiled before
any port opens, so the first note creates no session and compiles nothing (benchmarks/cold_start.py
times what the first notes cost). The shipped duet patch has the critic on: its candidates' kernel and
its batched session are held to the same."""

from __future__ import annotations

import sys
from pathlib import Path

import onnxruntime
import pytest

import realtime
from realtime.app import LiveEngine
from realtime.clock import FakeClock
from realtime.events import NoteMessage
from realtime.model import critic as critic_module
from realtime.model import generator as generator_module
from realtime.model.generator import ModelRunner
from realtime.patch import load_patch
from realtime.patchports import MemoryPorts

DUET = Path(__file__).resolve().parents[1] / "patches" / "duet.toml"


class _LoggedPorts(MemoryPorts):
    """Memory ports whose opening is logged."""

    def __init__(self, log: list) -> None:
        super().__init__()
        self.log = log

    def open_outputs(self, clock, voices=()):
        self.log.append(("port", "output"))
        return super().open_outputs(clock, voices)

    def open_inputs(self, clock, raw_midi=None) -> None:
        self.log.append(("port", "input"))
        super().open_inputs(clock, raw_midi)


def _logged_live(log: list) -> LiveEngine:
    """The live engine from the shipped duet patch, with memory ports whose opening is logged."""
    return LiveEngine(load_patch(DUET), FakeClock(1_000_000_000), _LoggedPorts(log))


@pytest.fixture
def log(monkeypatch) -> list:
    """Every ONNX session made, model step taken and note sampled (and whether that call compiled), in order:
    ("sample", ...) by the generator's sampler, ("candidates", ...) by the critic's K candidates at once."""
    events: list = []
    real_session, real_step = onnxruntime.InferenceSession, ModelRunner.step_batch

    class LoggedSession(real_session):
        def __init__(self, *args, **kwargs) -> None:
            events.append(("session",))
            super().__init__(*args, **kwargs)

    def step_batch(self, *args, **kwargs):
        events.append(("step",))
        return real_step(self, *args, **kwargs)

    def logged(kind: str, real_kernel, compiler: str):
        def kernel(*args):
            caller = "compile" if sys._getframe(1).f_code.co_name == compiler else "note"
            compiled_before = (len(real_kernel.signatures), sum(real_kernel.stats.cache_misses.values()))
            result = real_kernel(*args)
            compiled = (len(real_kernel.signatures), sum(real_kernel.stats.cache_misses.values())) != compiled_before
            events.append((kind, caller, "compiled" if compiled else "ready"))
            return result
        return kernel

    monkeypatch.setattr(onnxruntime, "InferenceSession", LoggedSession)
    monkeypatch.setattr(ModelRunner, "step_batch", step_batch)
    # called by compile_sampler / compile_critic (logged as "compile") and by each note decision ("note")
    monkeypatch.setattr(generator_module, "sample_note", logged("sample", generator_module.sample_note, "compile_sampler"))
    monkeypatch.setattr(critic_module, "sample_candidates",
                        logged("candidates", critic_module.sample_candidates, "compile_critic"))
    return events


def test_model_and_sampler_are_warm_before_any_port_opens(log):
    live = _logged_live(log)
    first_port = log.index(("port", "output"))
    before = log[:first_port]
    assert ("session",) in before, f"no ONNX session before the first port opened: {log[:5]}"
    assert before.count(("step",)) > 1, "the model was stepped only by its reset before the ports opened: no warm-up"
    assert any(e[:2] == ("sample", "compile") for e in before), "the sampler was first compiled after the ports opened"
    assert any(e[:2] in (("sample", "note"), ("candidates", "note")) for e in before), \
        "no note was decided before the ports opened: no warm-up"
    if live.mode.generator.critic is not None:
        assert any(e[:2] == ("candidates", "compile") for e in before), "the critic compiled after the ports opened"
        assert any(e[:2] == ("candidates", "note") for e in before), "the critic's warm-up proposed nothing"
    assert ("port", "input") in log[first_port:]
    live.stop()


def test_first_note_creates_no_session_and_compiles_nothing(log):
    live = _logged_live(log)
    heard_from = len(log)
    mode, now = live.mode, live.clock.now_ns()
    for i, pitch in enumerate((60, 64, 67)):  # a phrase, as the engine hands it to the mode
        mode.on_message(NoteMessage(pitch, 90, 0), now + i * 200_000_000)
        mode.on_message(NoteMessage(pitch, 0, 0), now + i * 200_000_000 + 150_000_000)
    live.clock.advance_ms(600)
    mode.tick(live.clock.now_ns())  # the phrase may have ended: the answer's first notes are chosen
    first_notes = log[heard_from:]
    decided = ("candidates" if live.mode.generator.critic is not None else "sample", "note", "ready")
    assert first_notes.count(("step",)) >= 3 and decided in first_notes, first_notes
    assert ("session",) not in first_notes, "an ONNX session was made on the first note"
    assert not [e for e in first_notes if e[-1] == "compiled"], f"a kernel compiled on the first note: {first_notes}"
    assert live.scheduler.planned(), "the answer was not scheduled"
    live.stop()


def test_compiled_sampler_is_cached_outside_the_source_tree():
    cache_path = Path(generator_module.sample_note.stats.cache_path).resolve()
    assert cache_path.is_relative_to(generator_module.cache_dir().resolve())
    assert not cache_path.is_relative_to(Path(realtime.__file__).resolve().parent), cache_path


def test_warm_up_changes_no_note():
    from realtime.offline import build_generator

    plain, warmed = build_generator("bach-folk-lstm.int8", seed=3), build_generator("bach-folk-lstm.int8", seed=3)
    warmed.warm_up()
    assert warmed.generate(32) == plain.generate(32)
