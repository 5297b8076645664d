"""Call and response: listen to a phrase, wait for it to end, answer in its style, yield at once.

While the player plays, each finished note is fed to the model in onset order, so the state
is primed by the time the phrase ends and the first answer note is already chosen. The answer
is generated a little ahead (`lookahead_ms`) and scheduled on absolute deadlines. When the
player starts again the pending answer is dropped, held notes are released, and the model is
rolled back to the last answer note that actually sounded. With a listener whose tempo tracker is
locked (and `follow_tempo`), the player's tempo, not the patch's, times what is heard and answered.
A memory of the player's phrases takes the share `blend` of each pitch choice (playermemory.py); a rhythm
prompt and a mood shape the answer (answershape.py: its onsets, tempo, key, register, density, loudness).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..clock import Clock
from ..events import NoteMessage
from ..listen import Listener
from ..model.markov import MarkovModel
from ..model.generator import Generator
from ..model.sampling import scale_pitch_classes
from ..model.tokens import DURATION_BEATS, IOI_BEATS, VELOCITY_LEVELS, Token, ioi_bucket
from ..scheduler import Scheduler
from ..settings import ContinuationSettings
from .answershape import AnswerShape
from .hearing import Hearing
from .phrasecontrols import PhraseControls
from .stagecontrols import listener_bar_ns
from .playermemory import PlayerMemory
from .status import Figures, continuation_fields


HISTORY_NOTES = 512  # heard pitches and rhythms kept for the fallback (it looks at the last 64 at most)
FALLBACK_CONTEXTS = 10_000  # the live Markov learner's memory: ~4 MB at most, reached after hours of playing


class Continuation(Hearing):
    """The duet partner: one model stream, one output channel."""

    beats_per_bar = 4  # the listener's bars a live style waits for (the patch's [engine] beats_per_bar: modes.py)

    def __init__(self, generator: Generator, scheduler: Scheduler, settings: ContinuationSettings,
                 model_velocity: float = 80.0, max_timings: int = 100_000, fallback: bool = True,
                 clock: Clock | None = None, listener: Listener | None = None,
                 memory: PlayerMemory | None = None, shape: AnswerShape | None = None) -> None:
        self.clock = clock  # for checking slack while generating; None: trust the tick's time
        self.listener = listener  # its locked tempo, when there is one, replaces the patch's
        self.generator, self.scheduler, self.settings = generator, scheduler, settings
        self.model_velocity = model_velocity
        self.ns_per_beat = settings.ms_per_beat * 1e6
        self.shape = shape if shape is not None else AnswerShape()
        self.answer_ns_per_beat = self.ns_per_beat  # the answer's beat: the player's, or its mood's tempo
        self.budget_ns = int(settings.budget_ms * 1e6)
        self.answering = False
        self._sounding: dict[tuple[int, int], tuple[int, int]] = {}  # player's (channel, pitch) -> (onset, vel)
        self._finished: list[tuple[int, int, int, int]] = []  # (onset, end, pitch, vel) waiting to be fed
        self._last_activity_ns: int | None = None
        self._last_fed_onset_ns: int | None = None
        self._phrase_velocities: list[int] = []  # of the phrase being heard (empty: nothing to answer)
        self._loudness: float | None = None  # of the phrase being answered
        # The answer is started tentatively as soon as the phrase may end (at the player's last
        # note-off): its first notes are chosen and scheduled, so the output thread plays them
        # exactly when the silence has lasted long enough; any input before that takes them back.
        self.tentative = False
        self._before_answer: tuple = ()
        # answer bookkeeping
        self._answer: list[tuple[int, np.ndarray, np.ndarray]] = []  # (onset, state, logits) after each note
        self._next: tuple[Token, int] | None = None
        self._answer_start_ns = self._answer_count = self._answer_done_ns = self._phrase_end_deadline_ns = 0
        self._waiting_first_send = False
        # the fallback: a live Markov learner over every pitch heard or played, and the phrase's rhythm
        self.fallback = MarkovModel(max_order=4, max_contexts=FALLBACK_CONTEXTS) if fallback else None
        self._heard_pitches: list[int] = []
        self._phrase_rhythm: list[Token] = []
        self._unheard: list[Token] = []  # answer notes the model has not been fed yet (it fell behind)
        # the player's phrases, learned for the blend and kept between shows (playermemory.py)
        self.memory = memory if memory is not None else PlayerMemory(settings.memory_path, settings.blend)
        self.follow = PhraseControls(generator.runner, settings)  # a model with controls hears the phrase's
        self._step_cost_ns = 0  # recent worst model step on the engine's clock, decaying
        self.model_failed = False
        # counts and timings, read outside the loop
        self.phrases = self.interruptions = self.fallback_notes = self.model_errors = self.behind = 0
        self.notes_timed_out = 0  # player notes ended by max_note_ms: a sender died or a note-off was lost
        self.last_error: str | None = None
        self.step_ns, self.steps = np.zeros(max_timings, dtype=np.int64), 0
        self.answer_latency_ns: list[int] = []
        self.scheduler.on_sent = self._sent

    def _timed_feed(self, token: Token) -> None:
        """Step the model on one note, timing it; a failing model is counted and left to the fallback."""
        if self.model_failed:
            return
        t0 = time.perf_counter_ns()
        c0 = self.clock.now_ns() if self.clock is not None else 0
        try:
            self.generator.feed(token)
        except Exception as err:  # onnxruntime raises its own kinds; the show goes on without the model
            self.model_failed = True
            self.model_errors += 1
            self.last_error = f"model step failed ({type(err).__name__}: {str(err)[:120]}); the Markov fallback answers"
            return
        if self.steps < len(self.step_ns):
            self.step_ns[self.steps] = time.perf_counter_ns() - t0
            self.steps += 1
        if self.clock is not None:  # what a step costs on the engine's clock decides when to catch up
            self._step_cost_ns = max(self.clock.now_ns() - c0, self._step_cost_ns * 7 // 8)

    # --- deciding --------------------------------------------------------------------------------
    def _phrase_end_ns(self) -> int | None:
        if self.answering or self._sounding or self._last_activity_ns is None or not self._phrase_velocities:
            return None
        return self._last_activity_ns + self.settings.phrase_end_ns_at(self.ns_per_beat)

    def next_deadline_ns(self) -> int | None:
        if not self.answering:
            return self._phrase_end_ns()
        wake = self._next[1] - int(self.settings.lookahead_ms * 1e6) if self._next else self._answer_done_ns
        return min(wake, self._answer_start_ns) if self.tentative else wake

    def tick(self, now_ns: int) -> None:
        if self._sounding:
            self._end_overlong_notes(now_ns)
        if not self.answering:
            end = self._phrase_end_ns()
            if end is None:
                return
            self._begin_answer(end, now_ns)
        if self.tentative and now_ns >= self._answer_start_ns:
            self._confirm()
        self._generate_ahead(now_ns)
        if not self.tentative and self._next is None and now_ns >= self._answer_done_ns and not len(self.scheduler):
            self.answering = False

    def _begin_answer(self, start_ns: int, now_ns: int) -> None:
        """As soon as the phrase may end, prepare and schedule the answer's start (tentatively)."""
        self._feed_finished()  # (and takes the player's tempo, if it is tracked)
        if len(self._heard_pitches) > 2 * HISTORY_NOTES:  # a long show must not grow without bound; here
            del self._heard_pitches[:-HISTORY_NOTES]  # no rollback index into these lists is held
            del self._phrase_rhythm[:-HISTORY_NOTES]
            del self.answer_latency_ns[:-HISTORY_NOTES]
        runner = self.generator.runner
        if not self.model_failed:  # a model with controls: the phrase's, once per answer
            chord = self.listener.snapshot(now_ns).chord if self.listener is not None else None
            self.follow.apply(self.ns_per_beat, self._phrase_velocities, self.shape.next_mood(), now_ns, chord)
        self._before_answer = (runner.get_state(), runner.logits.copy(), self._last_fed_onset_ns,
                               len(self._heard_pitches))
        self.answering = self.tentative = True
        self.generator.begin_answer()
        self._answer.clear()
        self._answer_start_ns = self._answer_done_ns = start_ns
        self._answer_count = 0
        self._next = None
        heard_tonic = self.listener.snapshot(now_ns).key.tonic if self.listener is not None else None
        self.answer_ns_per_beat, self._loudness = self.shape.begin(self.generator, self.ns_per_beat,
                                                                   self._phrase_loudness(), heard_tonic, now_ns)
        self._pull_to_key(now_ns)
        if (critic := self.generator.critic) is not None:  # the context its fragments are judged in (model/critic.py)
            critic.hear_duet(self, now_ns)
        self._phrase_end_deadline_ns = start_ns
        self._waiting_first_send = True  # the output thread may send it before the engine looks again
        gap_beats = (start_ns - self._last_fed_onset_ns) / self.ns_per_beat
        first = self._choose(ioi_bucket(gap_beats), self.shape.step(0)[1])
        self._schedule(first, start_ns)
        self._commit(first, start_ns)

    def _pull_to_key(self, now_ns: int) -> None:
        """The answer leans into the key: the one the model was told for this phrase, else the listener's.

        Told the phrase's key, the stage model still put 22% of its answers below 90% of notes in it on held-out
        prompts (benchmarks/follow.py with key_pull 0; 6% with the default 2 nats). `key_pull` nats come off
        each pitch outside the key's scale, except the pitch classes the phrase played twice or more (a minor
        tune's raised seventh): a soft key mask, set once per answer. None where a hard key (a mood's, the
        patch's [model] key) already masks the pitches.
        """
        generator, pull = self.generator, self.settings.key_pull
        key = self.follow.key
        if key is None and self.listener is not None:
            heard = self.listener.snapshot(now_ns).key
            key = (heard.tonic, heard.mode)
        if pull <= 0 or key is None or key[0] is None or generator.constraints.pitch_classes is not None:
            generator.set_key_pull(None, 0.0)
        else:
            generator.set_key_pull(scale_pitch_classes(*key) | self.follow.repeated, pull)

    def _confirm(self) -> None:
        """The silence has lasted: the answer is real, and a new phrase starts empty."""
        self.tentative = False
        self.phrases += 1
        self._fresh_phrase = self.settings.fresh_phrases
        if self.fallback is not None:
            self.fallback.update(self._heard_pitches[-64:])
        self.memory.end_phrase()
        self.shape.confirm()
        self.follow.end_phrase()
        self._phrase_velocities = []

    # --- speaking --------------------------------------------------------------------------------
    def _phrase_loudness(self) -> float | None:
        velocities, heard = self._phrase_velocities, "dynamics" in self.follow.applied  # then the model plays it
        return sum(velocities) / len(velocities) if self.settings.follow_velocity and velocities and not heard else None

    def _velocity(self, token: Token) -> int:
        if self._loudness is None:
            return VELOCITY_LEVELS[token.velocity]
        return max(1, min(127, round(self._loudness * VELOCITY_LEVELS[token.velocity] / self.model_velocity)))

    def _schedule(self, token: Token, onset_ns: int) -> None:
        velocity = self._velocity(token)
        rhythm = self.shape.rhythm
        beats = DURATION_BEATS[token.duration] if rhythm is None else rhythm.duration_beats(self._answer_count)
        end_ns = onset_ns + int(beats * self.answer_ns_per_beat)
        channel = self.settings.channel
        self.scheduler.push(NoteMessage(token.pitch, velocity, channel), onset_ns)
        self.scheduler.push(NoteMessage(token.pitch, 0, channel), end_ns)
        self._answer_done_ns = max(self._answer_done_ns, end_ns)

    def _commit(self, token: Token, onset_ns: int) -> None:
        """The note is scheduled: advance the timeline and let the model hear it, if there is time."""
        self.generator.advance(token)
        self._last_fed_onset_ns = onset_ns
        self._answer_count += 1
        self._heard_pitches.append(token.pitch)
        if self.clock is not None:
            slack = onset_ns - self.clock.now_ns()
            if self._unheard or slack < self._step_cost_ns or -slack > self.budget_ns // 2:
                # a model step would not fit before this note sounds (or we are late already): the
                # fallback chooses the next notes, and the model hears these when there is time
                self.behind += 0 if self._unheard else 1
                self._unheard.append(token)
                return
        self._timed_feed(token)
        if not self.model_failed:
            self._answer.append((onset_ns, self.generator.runner.get_state(), self.generator.runner.logits.copy()))

    def _catch_up(self, now_ns: int, next_deadline_ns: int) -> None:
        """Feed the model the notes it missed while it was behind, while there is slack."""
        while self._unheard and next_deadline_ns - now_ns > 2 * max(self.budget_ns, self._step_cost_ns):
            self._timed_feed(self._unheard.pop(0))
            now_ns = self.clock.now_ns() if self.clock is not None else now_ns

    def _choose(self, ioi: int | None = None, duration: int | None = None) -> Token:
        """The next note: the model's choice, or the fallback's when the model is behind or failed."""
        if not (self._unheard or self.model_failed) or self.fallback is None:
            return self.generator.sample_next(ioi, self.memory.blended(self._heard_pitches), self.memory.blend,
                                              duration)
        self.fallback_notes += 1
        rhythm = self._phrase_rhythm[self.fallback_notes % len(self._phrase_rhythm)] if self._phrase_rhythm else None
        context = self._heard_pitches[-4:]
        pitch = self.fallback.sample(context, self.generator.sampler.rng, allowed=self.generator.pitch_mask)
        if rhythm is None:
            return Token(pitch, ioi if ioi is not None else 5, 4 if duration is None else duration, 4)
        return Token(pitch, ioi if ioi is not None else max(rhythm.ioi, 1),
                     rhythm.duration if duration is None else duration, rhythm.velocity)

    def _generate_ahead(self, now_ns: int) -> None:
        horizon = now_ns + int(self.settings.lookahead_ms * 1e6)
        limit_ns = self._answer_start_ns + int(self.settings.answer_beats * self.answer_ns_per_beat)
        while self._answer_count < self.settings.answer_notes:
            if self._next is None:
                token = self._choose(*self.shape.step(self._answer_count))
                self._next = (token, self._onset_ns(token))
            token, onset = self._next
            if onset >= limit_ns:
                self._answer_count = self.settings.answer_notes  # the answer is long enough
                break
            if onset > horizon:
                self._catch_up(now_ns, onset - int(self.settings.lookahead_ms * 1e6))
                return
            self._schedule(token, onset)
            self._commit(token, onset)
            self._next = None
        self._next = None

    def _onset_ns(self, token: Token) -> int:
        """When the next note starts: its onset bucket after the last, or the rhythm prompt's own onset (exact,
        not the bucket the model heard), counted from the answer's first note."""
        if (rhythm := self.shape.rhythm) is None:
            return self._last_fed_onset_ns + int(IOI_BEATS[token.ioi] * self.answer_ns_per_beat)
        return self._answer_start_ns + int(rhythm.onset_beats(self._answer_count) * self.answer_ns_per_beat)

    def _sent(self, message: NoteMessage, deadline_ns: int, sent_ns: int) -> None:
        if self._waiting_first_send and message.is_on:
            self._waiting_first_send = False
            self.answer_latency_ns.append(sent_ns - self._phrase_end_deadline_ns)

    def _rollback(self, at_ns: int) -> None:
        """Silence the answer and forget its notes that never sounded (the player has the floor)."""
        self.scheduler.cancel_all()
        self.answering = self.tentative = self._waiting_first_send = False
        self._next = None
        self._unheard.clear()
        played = [entry for entry in self._answer if entry[0] <= at_ns]
        state, logits, onset, heard = self._before_answer
        if played:
            onset, state, logits = played[-1]
            heard += len(played)
        self.generator.runner.reset(state)
        self.generator.runner.logits = logits
        self._last_fed_onset_ns = onset
        del self._heard_pitches[heard:]
        self._answer.clear()

    def apply_control(self, target: str, value: float) -> None:
        """A mapped controller moved: change how the next notes are chosen (never the ones scheduled)."""
        if target == "temperature":
            self.generator.sampler.set(temperature=value)
        elif target == "top_p":
            self.generator.sampler.set(top_p=value)
        elif target == "answer_notes":
            self.settings = replace(self.settings, answer_notes=int(round(value)))
        elif target == "phrase_end_ms":
            self.settings = replace(self.settings, phrase_end_ms=value)
        elif target == "blend":
            self.last_error = self.memory.set_blend(value) or self.last_error
        elif target == "key_pull":
            self.settings = replace(self.settings, key_pull=value)  # the next answer leans by it

    def request_shape(self, what: str, text: str) -> None:
        """`/rhythm TEXT` or `/mood NAME`: the next answer takes it (a bad one is refused in one line)."""
        self.last_error = self.shape.request(what, text) or self.last_error

    def request_style(self, name: str | None, now_ns: int, program: int | None = None) -> None:
        """`/style NAME` or a program change: the first answer after the listener's next bar line plays in it."""
        stage, at_ns = self.follow.stage, listener_bar_ns(self.listener, now_ns, self.beats_per_bar)
        refusal = stage.by_program(program, at_ns) if name is None else stage.request(name, at_ns)
        self.last_error = refusal or self.last_error

    def stop(self, now_ns: int) -> None:
        self.answering, self._next = False, None

    # --- the session's side (realtime/session.py), outside the loop -------------------------------
    def warm_up(self) -> None:
        self.generator.warm_up()  # whole throwaway notes; the seed's sequence is put back

    def begin(self, now_ns: int) -> None:
        """Nothing to start: the duet waits for the player."""

    def status_fields(self, figures: Figures, now_ns: int) -> list[str]:
        return continuation_fields(self, figures)

    def drops(self) -> int:
        return 0  # every note reaching the mode is heard (the engine's inbox counts its own drops)
