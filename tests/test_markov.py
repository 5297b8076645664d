"""The variable-order Markov baseline: smoothing, back-off, NLL, sampling and live updates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from realtime.model.markov import MarkovModel

SCALE_UP = [60, 62, 64, 65, 67, 69, 71, 72]
RIFF = [60, 64, 67, 64, 60, 62, 64, 62]


@pytest.fixture
def model() -> MarkovModel:
    return MarkovModel(max_order=4).fit([SCALE_UP, RIFF, SCALE_UP[::-1]])


def repetitive_corpus() -> list[list[int]]:
    return [RIFF * 6, SCALE_UP * 4, (RIFF[:5] + SCALE_UP[2:6]) * 3]


@pytest.mark.parametrize(
    "context",
    [[], [60], [60, 62, 64], [1, 2, 3], [127, 0, 64, 62], [71, 72, 60, 62, 64, 65, 67]],
)
def test_distribution_sums_to_one_and_is_positive(model: MarkovModel, context: list[int]) -> None:
    p = model.distribution(context)
    assert p.shape == (128,) and p.dtype == np.float64
    assert abs(p.sum() - 1.0) < 1e-9
    assert (p > 0).all()


def test_untrained_model_is_uniform() -> None:
    p = MarkovModel(max_order=3, vocab_size=10).distribution([1, 2, 3])
    np.testing.assert_allclose(p, np.full(10, 0.1))


def test_witten_bell_formula_by_hand() -> None:
    m = MarkovModel(max_order=1, vocab_size=4).fit([[0, 1, 0, 2]])
    # order 0: counts {0:2, 1:1, 2:1}, N=4, T=3 -> (c + 3/4) / 7
    p0 = np.array([2.75, 1.75, 1.75, 0.75]) / 7
    np.testing.assert_allclose(m.distribution([], order=0), p0)
    # after 0: followers {1:1, 2:1}, c=2, T=2 -> (c + 2 * p0) / 4
    np.testing.assert_allclose(m.distribution([0]), (np.array([0, 1, 1, 0]) + 2 * p0) / 4)


def test_seen_context_predicts_its_continuation() -> None:
    m = MarkovModel(max_order=3).fit([[60, 62, 64, 65], [64, 60, 64, 67, 64, 69, 64, 71]])
    p = m.distribution([60, 62, 64], order=3)
    assert int(np.argmax(p)) == 65
    # with only the last note, 64 is mostly followed by other notes
    assert int(np.argmax(m.distribution([60, 62, 64], order=1))) != 65


def test_unseen_long_context_backs_off_to_longest_seen_suffix(model: MarkovModel) -> None:
    context = [10, 20, 64]  # only the final 64 was ever heard
    assert model.longest_context(context) == 1
    p3 = model.distribution(context, order=3)
    p1 = model.distribution([64], order=1)
    assert int(np.argmax(p3)) == int(np.argmax(p1))
    np.testing.assert_allclose(p3, p1)


def test_order_limits_how_far_back_it_listens(model: MarkovModel) -> None:
    np.testing.assert_allclose(model.distribution([99, 60, 62], order=2), model.distribution([60, 62]))
    np.testing.assert_allclose(model.distribution([60, 62], order=0), model.distribution([]))


def test_training_nll_does_not_increase_with_order() -> None:
    corpus = repetitive_corpus()
    m = MarkovModel(max_order=4).fit(corpus)
    nlls = [m.nll(corpus, order=k) for k in range(1, 5)]
    for shorter, longer in zip(nlls, nlls[1:]):
        assert longer <= shorter + 1e-12
    assert nlls[-1] < nlls[0]


def test_heldout_nll_is_finite() -> None:
    m = MarkovModel(max_order=4).fit(repetitive_corpus())
    rng = np.random.default_rng(0)
    heldout = [rng.integers(0, 128, size=50).tolist() for _ in range(5)]
    for k in range(0, 5):
        value = m.nll(heldout, order=k)
        assert math.isfinite(value) and value > 0


def test_nll_is_mean_of_manual_log_probs(model: MarkovModel) -> None:
    sequences = [[60, 62, 64, 65, 67], [72, 71, 69], [5]]
    terms = [
        -model.log_prob(seq[:i], seq[i], order=3) for seq in sequences for i in range(len(seq))
    ]
    assert model.nll(sequences, order=3) == pytest.approx(np.mean(terms), rel=1e-12)


def test_log_prob_matches_distribution(model: MarkovModel) -> None:
    for context in ([], [60, 62], [64, 60, 62, 64], [3, 4, 5, 6, 7]):
        p = model.distribution(context)
        for note in (0, 60, 62, 64, 65, 127):
            assert model.log_prob(context, note) == pytest.approx(math.log(p[note]), rel=1e-12)


def test_sequences_are_independent() -> None:
    m = MarkovModel(max_order=2).fit([[1, 2], [3, 4]])
    assert m.longest_context([2, 3]) == 1  # "2 3" never happened across the boundary
    assert m.longest_context([2]) == 0  # 2 ended its phrase, so nothing ever followed it
    np.testing.assert_allclose(m.distribution([2]), m.distribution([]))


def test_sample_respects_allowed_and_is_reproducible(model: MarkovModel) -> None:
    allowed = np.zeros(128, dtype=bool)
    allowed[[60, 63, 66, 100]] = True
    rng = np.random.default_rng(7)
    draws = [model.sample([60, 62, 64], rng, allowed=allowed) for _ in range(2000)]
    assert set(draws) <= {60, 63, 66, 100}
    assert len(set(draws)) > 1

    def sampled(seed: int, n: int = 200, temperature: float = 0.8) -> list[int]:
        rng = np.random.default_rng(seed)
        return [model.sample([60, 62], rng, temperature=temperature) for _ in range(n)]

    assert sampled(123) == sampled(123), "one seed repeats itself"
    assert sampled(123) != sampled(124), "another seed gives other notes: the draws use the generator"
    counts = np.bincount(sampled(5, n=4000, temperature=1.0), minlength=128) / 4000
    assert 0.5 * np.abs(counts - model.distribution([60, 62])).sum() < 0.05, "draws follow the distribution"


def test_sample_follows_strong_context() -> None:
    m = MarkovModel(max_order=3).fit([[60, 62, 64, 65]] * 20)
    rng = np.random.default_rng(1)
    draws = [m.sample([60, 62, 64], rng, temperature=0.5) for _ in range(200)]
    assert draws.count(65) > 180


def test_sample_rejects_bad_mask_and_temperature(model: MarkovModel) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        model.sample([60], rng, allowed=np.zeros(128, dtype=bool))
    with pytest.raises(ValueError):
        model.sample([60], rng, allowed=np.ones(12, dtype=bool))
    with pytest.raises(ValueError):
        model.sample([60], rng, temperature=0.0)


def test_longest_context(model: MarkovModel) -> None:
    assert model.longest_context([]) == 0
    assert model.longest_context([3]) == 0
    assert model.longest_context([60, 62, 64]) == 3
    assert model.longest_context([1, 60, 62, 64, 65]) == 4
    assert model.longest_context([1, 60, 62, 64, 65], order=2) == 2
    assert model.longest_context([99, 64]) == 1


def test_update_after_fit_changes_distribution(model: MarkovModel) -> None:
    before = model.distribution([60, 62])
    assert model.longest_context([50, 52]) == 0
    model.update([50, 52, 55, 50, 52, 55])
    after = model.distribution([60, 62])
    assert not np.allclose(before, after)  # the order-0 floor moved
    assert model.longest_context([50, 52]) == 2
    assert int(np.argmax(model.distribution([50, 52]))) == 55


def test_incremental_updates_equal_one_fit() -> None:
    corpus = repetitive_corpus()
    live = MarkovModel(max_order=3)
    for seq in corpus:
        live.update(seq)
    batch = MarkovModel(max_order=3).fit(corpus)
    np.testing.assert_array_equal(live.distribution([60, 64, 67]), batch.distribution([60, 64, 67]))


@pytest.mark.parametrize("bad", [-1, 128, 300])
def test_out_of_range_symbols_raise(model: MarkovModel, bad: int) -> None:
    with pytest.raises(ValueError, match=str(bad)):
        model.update([60, bad])
    with pytest.raises(ValueError, match=str(bad)):
        model.fit([[bad]])
    with pytest.raises(ValueError, match=str(bad)):
        model.distribution([bad, 60])
    with pytest.raises(ValueError, match=str(bad)):
        model.log_prob([60], bad)
    with pytest.raises(ValueError, match=str(bad)):
        model.nll([[60, bad]])
    with pytest.raises(ValueError, match=str(bad)):
        model.longest_context([bad])


def test_invalid_order_raises(model: MarkovModel) -> None:
    with pytest.raises(ValueError):
        model.distribution([60], order=5)
    with pytest.raises(ValueError):
        model.nll([[60, 62]], order=-1)


def test_numpy_integer_symbols_work(model: MarkovModel) -> None:
    context = np.array([60, 62, 64], dtype=np.int64)
    np.testing.assert_allclose(model.distribution(context), model.distribution([60, 62, 64]))
