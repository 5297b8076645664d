import numpy as np
import pytest

from realtime.errors import InputError
from realtime.model.generator import Generator
from realtime.model.generator import ModelRunner
from realtime.model.sampling import Constraints, Sampler, key_pitch_classes
from realtime.model.tokens import DURATION_BEATS, IOI_BEATS

C_MAJOR = {0, 2, 4, 5, 7, 9, 11}


def test_key_names():
    assert key_pitch_classes("C major") == C_MAJOR
    assert key_pitch_classes("A minor") == C_MAJOR
    assert key_pitch_classes("F# minor") == {6, 8, 9, 11, 1, 2, 4}
    assert key_pitch_classes("Bb") == {10, 0, 2, 3, 5, 7, 9}
    for bad in ("H major", "C lydianish", ""):
        with pytest.raises(InputError):
            key_pitch_classes(bad)


def _pitch_draws(model, sampler: Sampler, probabilities: list[float], n: int) -> list[int]:
    """n pitches drawn by the live sampler when the model gives pitches 60, 61, ... these probabilities."""
    from realtime.model.modelfile import N_LOGITS, field_slices

    generator = Generator(ModelRunner(model), sampler)
    logits = np.zeros((1, N_LOGITS), dtype=np.float32)
    pitch = logits[0, field_slices()["pitch"]]
    pitch[:] = -np.inf
    pitch[60:60 + len(probabilities)] = np.log(probabilities)
    generator.runner.logits = logits
    return [generator.sample_next().pitch for _ in range(n)]


def test_sampler_is_seeded_and_respects_top_p(shipped_model):
    probabilities = [0.5, 0.3, 0.15, 0.05]
    seen = set(_pitch_draws(shipped_model, Sampler(3, 1.0, 0.75), probabilities, 3000))
    assert seen == {60, 61}  # 0.5 + 0.3 covers 0.75: the other two are outside the nucleus
    first, again = (_pitch_draws(shipped_model, Sampler(11, 0.9, 0.95), probabilities, 50) for _ in range(2))
    assert first == again and len(set(first)) > 1


def test_low_temperature_concentrates(shipped_model):
    probabilities = [0.4, 0.35, 0.25]
    cold = _pitch_draws(shipped_model, Sampler(0, 0.01), probabilities, 1000)
    hot = _pitch_draws(shipped_model, Sampler(0, 2.0), probabilities, 1000)
    assert cold.count(60) > 990
    assert hot.count(60) < 600


def test_ten_thousand_masked_notes_stay_in_key_and_range(shipped_model):
    constraints = Constraints(pitch_classes=key_pitch_classes("C major"), lowest=55, highest=79)
    generator = Generator(ModelRunner(shipped_model), Sampler(1, 1.2, 1.0), constraints)
    generator.reset()
    pitches = []
    for _ in range(10_000):
        token = generator.sample_next()
        generator.commit(token)
        pitches.append(token.pitch)
    pitches = np.array(pitches)
    assert set(pitches % 12) <= C_MAJOR
    assert pitches.min() >= 55 and pitches.max() <= 79
    assert len(set(pitches)) >= 8, "the mask must leave the model a real choice"


def test_polyphony_never_exceeds_the_limit(shipped_model):
    generator = Generator(ModelRunner(shipped_model), Sampler(2, 1.3, 1.0), Constraints(max_polyphony=2))
    generator.reset()
    spans, t = [], 0.0
    for token in generator.generate(2000):
        t += IOI_BEATS[token.ioi]
        spans.append((t, t + DURATION_BEATS[token.duration], token.pitch))
    for onset, _, pitch in spans:
        sounding = [s for s in spans if s[0] <= onset < s[1] - 1e-9]  # a note ending as another starts does not overlap
        assert len(sounding) <= 2
        assert [s[2] for s in sounding].count(pitch) == 1


def test_constraints_refuse_nonsense():
    with pytest.raises(InputError):
        Constraints(lowest=80, highest=70)
    with pytest.raises(InputError):
        Constraints(pitch_classes=frozenset({1}), lowest=60, highest=60)
    with pytest.raises(InputError):
        Constraints(max_polyphony=0)
    with pytest.raises(InputError):
        Sampler(0, temperature=0)


@pytest.mark.parametrize("top_p", [1.0, 0.8])
def test_fused_sampling_draws_each_head_from_its_exact_distribution(shipped_model, top_p):
    from realtime.model.modelfile import N_LOGITS, field_slices

    generator = Generator(ModelRunner(shipped_model), Sampler(4, 0.7, top_p))
    generator.reset()
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, size=(1, N_LOGITS)).astype(np.float32)
    generator.runner.logits = logits
    draws = [generator.sample_next() for _ in range(20_000)]
    for field, slc in field_slices().items():
        p = np.exp(logits[0, slc] / 0.7)
        p /= p.sum()
        if top_p < 1:  # the nucleus: likeliest classes until their mass reaches top_p
            order = np.argsort(-p)
            keep = order[:np.searchsorted(np.cumsum(p[order]), top_p) + 1]
            nucleus = np.zeros_like(p)
            nucleus[keep] = p[keep]
            p = nucleus / nucleus.sum()
        seen = np.bincount([getattr(d, field) for d in draws], minlength=len(p)) / len(draws)
        assert np.abs(seen - p).max() < 0.015, field
        assert np.all(seen[p == 0] == 0), f"{field}: drew a class outside the nucleus"
