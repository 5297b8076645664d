"""Call and response on a fake clock: every time below is exact, nothing sleeps."""

from functools import partial

import numpy as np
import pytest

from realtime.clock import FakeClock
from realtime.engine.continuation import Continuation, ContinuationSettings
from realtime.engine.engine import Engine
from realtime.io.ports import MemoryInput, MemoryOutput
from realtime.model.generator import Generator
from realtime.model.generator import ModelRunner
from realtime.model.sampling import Sampler
from realtime.scheduler import Scheduler

MS = 1_000_000
# (onset ms, duration ms, pitch, velocity): a G-major phrase at 100 bpm (600 ms a beat)
PHRASE = [(0, 540, 67, 84), (600, 270, 69, 72), (900, 270, 71, 76), (1200, 540, 74, 92), (1800, 540, 71, 80),
          (2400, 270, 72, 86), (2700, 270, 71, 74), (3000, 270, 69, 76), (3300, 270, 67, 70),
          (3600, 540, 66, 82), (4200, 570, 62, 78)]
PHRASE_END_MS = 4200 + 570  # the last note-off


class Duet:
    """An engine on a fake clock, a keyboard to play into it, and a recorder on its output."""

    def __init__(self, model, seed=5, **settings):
        self.clock = FakeClock()
        self.keyboard = MemoryInput(self.clock)
        self.output = MemoryOutput(self.clock)
        self.scheduler = Scheduler(self.output, late_tolerance_ns=settings.get("budget_ms", 3) * MS)
        self.settings = ContinuationSettings(tempo_bpm=100, **settings)
        generator = Generator(ModelRunner(model), Sampler(seed, 0.9, 0.92))
        generator.reset()
        self.mode = Continuation(generator, self.scheduler, self.settings, clock=self.clock)
        self.engine = Engine(self.mode, self.clock, [self.keyboard], self.scheduler)

    def run_to(self, t_ms, events=()):
        """Run the engine's own loop to t_ms, the clock playing (at_ms, pitch, velocity) events on the way."""
        for at_ms, pitch, velocity in sorted(events):
            self.clock.call_at(at_ms * MS, partial(self.keyboard.play, pitch, velocity))
        self.engine.loop(t_ms * MS)

    def note_ons(self, after_ms=0):
        return [(t / MS, m) for t, m in self.output.sent if m.is_on and t >= after_ms * MS]


def phrase_events(offset_ms=0):
    events = []
    for onset, duration, pitch, velocity in PHRASE:
        events += [(offset_ms + onset, pitch, velocity), (offset_ms + onset + duration, pitch, 0)]
    return events


def test_waits_for_the_phrase_end_then_answers_at_once(shipped_model):
    duet = Duet(shipped_model, phrase_end_ms=500)
    deadline_ms = PHRASE_END_MS + 500
    duet.run_to(deadline_ms - 1, phrase_events())
    assert duet.output.sent == [], "nothing may sound while the player plays or the silence is short"
    duet.run_to(deadline_ms)
    (first_ms, first), *_ = duet.note_ons()
    assert first_ms == deadline_ms
    assert duet.mode.answer_latency_ns == [0]
    duet.run_to(deadline_ms + 20_000)
    ons = duet.note_ons()
    assert 4 <= len(ons) <= duet.settings.answer_notes
    assert ons[-1][0] < deadline_ms + duet.settings.answer_beats * 600
    assert duet.output.held == set(), "every answer note was released"
    assert not duet.mode.answering and len(duet.scheduler) == 0


def test_phrase_end_in_beats_follows_the_tempo(shipped_model):
    duet = Duet(shipped_model, phrase_end_beats=2.0)
    duet.run_to(PHRASE_END_MS + 1199, phrase_events())
    assert duet.output.sent == []
    duet.run_to(PHRASE_END_MS + 1200)
    assert duet.note_ons()[0][0] == PHRASE_END_MS + 1200


def test_stops_within_one_step_when_the_player_starts_again(shipped_model):
    duet = Duet(shipped_model, phrase_end_ms=400, answer_notes=40, answer_beats=32)
    start_ms = PHRASE_END_MS + 400
    duet.run_to(start_ms, phrase_events())
    while len(duet.note_ons()) < 2 and duet.clock.now_ns() < (start_ms + 8000) * MS:
        duet.run_to(duet.clock.now_ns() / MS + 1)
    assert len(duet.note_ons()) >= 2, "the answer is under way"
    cut_in_ms = int(duet.clock.now_ns() / MS) + 1
    duet.run_to(cut_in_ms, [(cut_in_ms, 60, 90)])
    assert duet.output.held == set(), "the answer let go of everything in the same step"
    assert len(duet.scheduler) == 0 and not duet.mode.answering
    assert duet.mode.interruptions == 1
    duet.run_to(cut_in_ms + 300, [(cut_in_ms + 250, 60, 0)])
    assert duet.note_ons(after_ms=cut_in_ms) == [], "no answer note while the player has the floor"
    # and the engine answers the new phrase after its own silence
    duet.run_to(cut_in_ms + 250 + 400 + 5)
    assert duet.note_ons(after_ms=cut_in_ms)[0][0] == cut_in_ms + 250 + 400


def test_close_silences_a_running_answer(shipped_model):
    duet = Duet(shipped_model, phrase_end_ms=300)
    duet.run_to(PHRASE_END_MS + 300 + 50, phrase_events())
    assert duet.output.held, "a note is sounding"
    duet.engine.close()
    assert duet.output.held == set() and len(duet.scheduler) == 0


def test_the_answer_sounds_like_the_phrase(shipped_model):
    """Key and register of the answer follow a G-major phrase around G4-D5, with no mask asked for."""
    g_major = {7, 9, 11, 0, 2, 4, 6}
    in_key, pitches = [], []
    for seed in range(6):
        duet = Duet(shipped_model, seed=seed, phrase_end_ms=500)
        duet.run_to(PHRASE_END_MS + 500 + 10_000, phrase_events())
        answer = [m.pitch for _, m in duet.note_ons()]
        in_key += [p % 12 in g_major for p in answer]
        pitches += answer
    assert np.mean(in_key) >= 0.85
    phrase_mean = np.mean([p for _, _, p, _ in PHRASE])
    assert abs(np.median(pitches) - phrase_mean) <= 7


def test_the_answer_follows_the_phrase_dynamics(shipped_model):
    soft = [(t, p, min(v, 40) if v else 0) for t, p, v in phrase_events()]
    duet = Duet(shipped_model, phrase_end_ms=500)
    duet.run_to(PHRASE_END_MS + 500 + 5000, soft)
    velocities = [m.velocity for _, m in duet.note_ons()]
    assert velocities and max(velocities) <= 60


@pytest.mark.parametrize("stray", [(100, 50, 0), (100, 61, 0)])
def test_note_off_without_note_on_changes_nothing(shipped_model, stray):
    duet = Duet(shipped_model, phrase_end_ms=500)
    duet.run_to(PHRASE_END_MS + 500 + 3000, phrase_events() + [stray])
    assert duet.note_ons()[0][0] == PHRASE_END_MS + 500


def _answer_is_whole(duet, start_ms):
    ons = duet.note_ons(after_ms=start_ms)
    assert len(ons) >= 5, "the answer went on"
    assert duet.output.held == set() and len(duet.scheduler) == 0


def test_a_model_too_slow_for_its_deadlines_hands_over_to_the_fallback(shipped_model):
    duet = Duet(shipped_model, phrase_end_ms=500, budget_ms=3, answer_notes=30, answer_beats=24)
    runner = duet.mode.generator.runner
    step_batch = runner.step_batch

    def slow_step(notes):  # every model step now costs 400 ms of (fake) time
        duet.clock.advance_ms(400)
        return step_batch(notes)

    duet.run_to(PHRASE_END_MS + 100, phrase_events())
    runner.step_batch = slow_step
    duet.run_to(PHRASE_END_MS + 500 + 30_000)
    assert duet.mode.behind >= 1 and duet.mode.fallback_notes >= 3
    assert duet.scheduler.late_count >= 1, "late notes are counted, never silently late"
    assert duet.scheduler.late_count < len(duet.note_ons()) // 2, "the fallback keeps most notes on time"
    _answer_is_whole(duet, PHRASE_END_MS)


def test_a_failing_model_is_reported_and_the_fallback_answers(shipped_model):
    duet = Duet(shipped_model, phrase_end_ms=500, answer_notes=12, answer_beats=24)
    runner = duet.mode.generator.runner

    def broken(notes):
        raise RuntimeError("simulated onnxruntime failure")

    duet.run_to(PHRASE_END_MS + 100, phrase_events())
    runner.step_batch = broken
    duet.run_to(PHRASE_END_MS + 500 + 20_000)
    assert duet.mode.model_errors == 1 and "simulated onnxruntime failure" in duet.mode.last_error
    assert duet.mode.fallback_notes >= 5
    _answer_is_whole(duet, PHRASE_END_MS)


def test_a_mapped_controller_changes_the_temperature(shipped_model):
    from realtime.events import ControlChange, NamedControl
    from realtime.patch import ControlMapping

    duet = Duet(shipped_model)
    duet.engine.controls = {"cc:1": [ControlMapping("cc:1", "temperature", 0.5, 1.5)],
                            "osc:top_p": [ControlMapping("osc:top_p", "top_p", 0.5, 1.0)]}
    duet.engine._hear(ControlChange(1, 127, 0), 0)
    duet.engine._hear(NamedControl("top_p", 0.0), 0)
    duet.engine._hear(ControlChange(7, 127, 0), 0)  # not mapped: no effect
    duet.engine.tick()
    sampler = duet.mode.generator.sampler
    assert sampler.temperature == pytest.approx(1.5) and sampler.top_p == pytest.approx(0.5)
    assert duet.engine.controls_applied == 2


def test_a_pause_shorter_than_the_phrase_end_takes_the_prepared_answer_back(shipped_model):
    duet = Duet(shipped_model, phrase_end_ms=500)
    duet.run_to(PHRASE_END_MS + 10, phrase_events())
    assert duet.mode.tentative and len(duet.scheduler) > 0, "the answer is ready for the phrase end"
    ready_state = duet.mode._before_answer[0]
    assert not np.array_equal(duet.mode.generator.runner.get_state(), ready_state), "its first note was fed"
    duet.run_to(PHRASE_END_MS + 300, [(PHRASE_END_MS + 300, 64, 70)])  # the player goes on
    assert not duet.mode.tentative and len(duet.scheduler) == 0 and duet.output.sent == []
    assert np.array_equal(duet.mode.generator.runner.get_state(), ready_state), "the model forgot the unplayed note"
    assert duet.mode.phrases == 0 and duet.mode.interruptions == 0
