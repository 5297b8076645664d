"""The critic: K candidate fragments sampled from one model state in one batched stream, scored, the best kept.

The brief's evaluation step, live. When the duet needs its next note and no fragment is waiting, the
generator (realtime/model/generator.py) asks the critic: the model's state is copied into the K
streams of a second session of the same graph, each stream samples a fragment of up to F notes with
the compiled sampler (same constraints, temperature and seeded uniforms), the K streams are stepped
together (F - 1 batched calls), and each fragment is scored:

    score = key * (share of notes in the key) + chord * (share of notes on the beat, else all notes,
            that are tones of the chord heard) + register * -(distance of the mean pitch from the
            target, in octaves) + leap * -(mean excess of each leap over a fourth, in fifths)
            + repetition * -(share of repeated notes, plus 1 if it repeats the last fragment)
            + player * (mean log-probability of its pitches under the player's live Markov model)
            + likelihood * (mean log-probability of its pitches under the model, as sampled)

A context the mode sets before each answer (`Critic.hear`) gives the key, chord, register target,
recent pitches and the Markov model; a missing one scores 0 for every candidate. The winner's notes
are served one by one by `Generator.sample_next` and heard by the generator's own stream as they are
committed, so after the fragment the generator's state is the winning stream's.
"""

from __future__ import annotations

import math

import numpy as np

from ..listen.chords import QUALITIES
from ..stagesettings import CriticSettings
from .generator import EPSILON_BEATS, ModelRunner, _compiled, sample_note
from .sampling import SCALES
from .tokens import DURATION_BEATS, IOI_BEATS, Token

_IOI = np.asarray(IOI_BEATS)
_DURATION = np.asarray(DURATION_BEATS)
UNHEARD_LOG_PROB = math.log(1e-4)  # the player criterion's score of a pitch the player's memory never heard
MAX_SOUNDING = 64  # each candidate's own notes still sounding, as the generator keeps them
WEIGHTS = ("key", "chord", "register", "leap", "repetition", "player", "likelihood")


@_compiled
def sample_candidates(logits, bias, starts, inv_temperature, top_p, uniforms, fixed_ioi, max_polyphony,
                      ioi_beats, duration_beats, times, ends, pitches, counts, scratch, weights, order, out,
                      notes, logp, onbeat, step, blend, markov):
    """One note for each of the K candidates (rows of `logits`), as Generator.sample_next chooses one, and
    each candidate's timeline moved on: notes[:, step], the pitch's log-probability, whether on a beat."""
    for c in range(logits.shape[0]):
        n = counts[c]
        first_allowed = 0
        if fixed_ioi < 0 and 0 < max_polyphony <= n:  # not before enough of its own notes have ended
            for i in range(n):
                scratch[i] = ends[c, i]
            scratch[:n].sort()
            first_allowed = np.searchsorted(ioi_beats, scratch[n - max_polyphony] - times[c] - EPSILON_BEATS)
        sample_note(logits[c], bias, starts, inv_temperature, top_p, uniforms[c], fixed_ioi, first_allowed,
                    ioi_beats, times[c], ends[c], pitches[c], n, weights, order, out, blend, markov)
        notes[c, step, :] = out
        top, total = -np.inf, 0.0  # the pitch's log-probability under the masked, tempered pitch head
        for i in range(starts[0], starts[1]):
            top = max(top, logits[c, i] * inv_temperature + bias[i])
        for i in range(starts[0], starts[1]):
            total += np.exp(logits[c, i] * inv_temperature + bias[i] - top)
        logp[c, step] = logits[c, starts[0] + out[0]] * inv_temperature + bias[starts[0] + out[0]] - top - np.log(total)
        t = times[c] + ioi_beats[out[1]]
        times[c] = t
        onbeat[c, step] = abs(t - np.round(t)) < 1e-6
        kept = 0
        for i in range(n):
            if ends[c, i] > t + EPSILON_BEATS:
                ends[c, kept], pitches[c, kept] = ends[c, i], pitches[c, i]
                kept += 1
        if kept < ends.shape[1]:
            ends[c, kept], pitches[c, kept] = t + duration_beats[out[2]], out[0]
            kept += 1
        counts[c] = kept


class Critic:
    """Proposes the best of K sampled fragments for a Generator (which owns the sampler and constraints)."""

    def __init__(self, generator, settings: CriticSettings) -> None:
        compile_critic()
        self.settings = s = settings
        self.k, self.f = s.candidates, s.fragment_notes
        self.runner = ModelRunner(generator.runner.path, batch=self.k, guidance=generator.runner.guidance)
        self._notes = np.zeros((self.k, self.f, 4), dtype=np.int64)  # the candidates' tokens
        self._logp = np.zeros((self.k, self.f))  # each pitch's log-probability under the model, as sampled
        self._onbeat = np.zeros((self.k, self.f), dtype=bool)
        self._uniforms = np.empty((self.k, 4))
        self._logits0 = np.zeros((self.k, generator.runner.logits.shape[1]), dtype=np.float32)
        self._times = np.zeros(self.k)
        self._ends, self._pitches = np.zeros((self.k, MAX_SOUNDING)), np.zeros((self.k, MAX_SOUNDING), dtype=np.int64)
        self._counts, self._scratch = np.zeros(self.k, dtype=np.int64), np.zeros(MAX_SOUNDING)
        self._out = np.empty(4, dtype=np.int64)
        self._weights = np.array([getattr(s, name) for name in WEIGHTS])
        self.key_mask = np.zeros(12, dtype=bool)  # the context (hear): nothing known yet
        self.chord_mask = np.zeros(12, dtype=bool)
        self.register_target: float | None = None
        self.recent: list[int] = []
        self.markov = None
        self._last_fragment: tuple[int, ...] = ()
        self.fragment: list[Token] = []  # the chosen notes not yet heard
        self._fragment_logits: np.ndarray | None = None  # the prediction its next note was chosen from
        self._served = False
        self.proposals = 0
        self.last_scores = np.zeros(self.k)

    def hear(self, key_pcs=None, chord_pcs=None, register_target: float | None = None,
             recent: list[int] | None = None, markov=None) -> None:
        """What the fragments are judged against: the key and chord (pitch classes), the register target
        (a MIDI pitch), the latest pitches heard or played, and the player's Markov model."""
        self.key_mask[:] = False
        self.key_mask[list(key_pcs or ())] = True
        self.chord_mask[:] = False
        self.chord_mask[list(chord_pcs or ())] = True
        self.register_target = register_target
        self.recent = list(recent or ())[-16:]
        self.markov = markov

    def next_note(self, generator, ioi: int | None, markov: np.ndarray, blend: float) -> Token:
        """Generator.sample_next with a critic: the waiting fragment's next note if it was chosen from this
        very prediction (and keeps a fixed onset asked for), else the first note of a new best fragment."""
        fragment = self.fragment
        if not (fragment and generator.runner.logits is self._fragment_logits and (ioi is None or fragment[0].ioi == ioi)):
            fragment[:] = self.propose(generator, ioi, markov, blend)
            self._fragment_logits = generator.runner.logits
        self._served = True
        return fragment[0]

    def heard(self, token: Token, logits: np.ndarray) -> None:
        """The generator fed a note: the fragment goes on only while its own notes are heard, in order."""
        if self.fragment:
            if self._served and token == self.fragment[0]:
                del self.fragment[0]
                self._fragment_logits = logits
            else:
                self.fragment.clear()
        self._served = False

    def hear_duet(self, duet, now_ns: int) -> None:
        """The duet's context for its answer (realtime/engine/continuation.py reads its own state here): the
        patch's key (else the key the listener hears), the chord heard when it is sure (0.5), the register of
        the player's last 16 notes, the latest pitches, the player's memory (its phrases, none of ours)."""
        constraints, listener, player_tokens = duet.generator.constraints, duet.listener, duet._phrase_rhythm
        recent, markov = duet._heard_pitches, duet.memory.model
        state = listener.snapshot(now_ns) if listener is not None else None
        key = constraints.pitch_classes
        if key is None and state is not None and state.key.tonic is not None:
            key = [(state.key.tonic + d) % 12 for d in SCALES[state.key.mode]]
        chord = None
        if state is not None and state.chord.root is not None and state.chord.confidence >= 0.5:
            chord = [(state.chord.root + d) % 12 for d in QUALITIES[state.chord.quality][0]]
        pitches = [token.pitch for token in player_tokens[-16:]]
        self.hear(key, chord, sum(pitches) / len(pitches) if pitches else None, recent[-16:], markov)

    def propose(self, generator, fixed_ioi: int | None = None, markov: np.ndarray | None = None,
                blend: float = 0.0) -> list[Token]:
        """The best fragment from the generator's present state (not changed here): its notes, first to last.
        With a `blend` of the player's `markov` distribution (at the fragment's start) in every pitch drawn."""
        k, runner, sampler = self.k, self.runner, generator.sampler
        runner.reset(np.repeat(generator.runner.state, k, axis=2))
        if runner.controls is not None:  # a model with controls: the fragments hear what the generator does
            runner.controls[:] = generator.runner.controls[0]
        self._times[:] = generator.time_beats
        sounding = generator.sounding[:MAX_SOUNDING]
        for c in range(k):
            for i, (end, pitch) in enumerate(sounding):
                self._ends[c, i], self._pitches[c, i] = end, pitch
        self._counts[:] = len(sounding)
        self._logits0[:] = generator.runner.logits[0]
        logits, inv_t = self._logits0, 1.0 / sampler.temperature
        max_polyphony = generator.constraints.max_polyphony or 0
        for step in range(self.f):
            sampler.rng.random(out=self._uniforms)
            sample_candidates(logits, generator._bias, generator._starts, inv_t, sampler.top_p, self._uniforms,
                              -1 if fixed_ioi is None or step else fixed_ioi, max_polyphony, _IOI, _DURATION,
                              self._times, self._ends, self._pitches, self._counts, self._scratch,
                              generator._weights, generator._order, self._out, self._notes, self._logp,
                              self._onbeat, step, blend, generator._no_markov if markov is None else markov)
            if step < self.f - 1:
                logits = runner.step_batch(self._notes[:, step])
        scores = self.score()
        best = int(np.argmax(scores))
        self.proposals += 1
        self.last_scores = scores
        chosen = self._notes[best]
        self._last_fragment = tuple(chosen[:, 0].tolist())
        return [Token(*row) for row in chosen.tolist()]

    def score(self) -> np.ndarray:
        """Each candidate's score (K,), from the fragments sampled and the context heard."""
        pitches = self._notes[:, :, 0]
        pcs = pitches % 12
        features = np.zeros((len(WEIGHTS), self.k))
        if self.key_mask.any():
            features[0] = self.key_mask[pcs].mean(axis=1)
        if self.chord_mask.any():
            tones = self.chord_mask[pcs]
            onbeat = self._onbeat
            counted = np.where(onbeat.any(axis=1, keepdims=True), onbeat, True)
            features[1] = (tones & counted).sum(axis=1) / counted.sum(axis=1)
        if self.register_target is not None:
            features[2] = -np.abs(pitches.mean(axis=1) - self.register_target) / 12.0
        previous = np.concatenate([np.full((self.k, 1), self.recent[-1] if self.recent else -1), pitches], axis=1)
        steps = np.abs(np.diff(previous, axis=1))
        if not self.recent:
            steps = steps[:, 1:]
        if steps.shape[1]:
            features[3] = -np.maximum(steps - 5, 0).mean(axis=1) / 7.0
            features[4] = -(steps == 0).mean(axis=1)
        if self._last_fragment:
            features[4] -= np.array([tuple(row) == self._last_fragment for row in pitches.tolist()], dtype=float)
        if self.markov is not None and self.settings.player:
            features[5] = [self._markov_logp(row) for row in pitches.tolist()]
        features[6] = self._logp.mean(axis=1)
        return self._weights @ features

    def _markov_logp(self, fragment: list[int]) -> float:
        context, total = list(self.recent[-4:]), 0.0
        for p in fragment:
            try:
                total += self.markov.log_prob(context, p)
            except ValueError:  # a pitch the memory never heard (it has no uniform floor)
                total += UNHEARD_LOG_PROB
            context = context[1:] + [p] if len(context) >= 4 else context + [p]
        return total / len(fragment)


def compile_critic() -> None:
    """Compile (or load from numba's cache) the candidates' kernel before a performance, never during one."""
    k, n = 2, 165
    starts = np.array([0, 128, 143, 157], dtype=np.int64)
    sample_candidates(np.zeros((k, n), dtype=np.float32), np.zeros(n), starts, 1.0, 0.9, np.full((k, 4), 0.5), -1, 0,
                      _IOI, _DURATION, np.zeros(k), np.zeros((k, MAX_SOUNDING)),
                      np.zeros((k, MAX_SOUNDING), dtype=np.int64), np.zeros(k, dtype=np.int64), np.zeros(MAX_SOUNDING),
                      np.empty(128), np.empty(128, dtype=np.int64), np.empty(4, dtype=np.int64),
                      np.zeros((k, 1, 4), dtype=np.int64), np.zeros((k, 1)), np.zeros((k, 1), dtype=bool), 0,
                      0.0, np.zeros(128))


def attach(generator, settings: CriticSettings) -> None:
    """K > 1 candidates: a critic picks the generator's every fragment from now on; K = 1: none (as before)."""
    generator.critic = Critic(generator, settings) if settings.candidates > 1 else None
