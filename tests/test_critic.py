"""The critic (realtime/model/critic.py): K candidate fragments from one state, scored, the best played.

K = 1 is today's duet note for note; a weight pulls the answers its way (register, key, leaps) against
the same seeds without it; the served fragment is exactly what the generator's own stream then hears;
anything else heard drops it; the patch's [critic] is checked and reaches the duet through the session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from realtime.app import LiveEngine
from realtime.clock import FakeClock
from realtime.errors import PatchError
from realtime.model.critic import attach as attach_critic
from realtime.model.generator import build_generator
from realtime.model.modelfile import models_dir
from realtime.model.tokens import Token
from realtime.patch import parse_patch
from realtime.patchports import MemoryPorts
from realtime.settings import ranges_table_markdown
from realtime.stagesettings import CRITIC_RANGES, CriticSettings

ROOT = Path(__file__).resolve().parents[1]
PROMPT = [Token(p, 5, 4, 4) for p in (60, 62, 64, 65, 67, 65, 64, 62)]  # C major, around E4
OFF = {name: 0.0 for name in ("key", "chord", "register", "leap", "repetition", "player", "likelihood")}


def _answers(model, seeds, critic: CriticSettings | None, context=None, notes=24, prompt=PROMPT,
             temperature=None):
    out = []
    for seed in seeds:
        g = build_generator(model, seed, temperature)
        if critic is not None:
            attach_critic(g, critic)
            if g.critic is not None:
                g.critic.hear(**(context or {}))
        for token in prompt:
            g.feed(token)
        out.append([t.pitch for t in g.generate(notes)])
    return out


def test_one_candidate_is_no_critic_and_the_same_notes(shipped_model):
    g = build_generator(shipped_model, 4)
    attach_critic(g, CriticSettings(candidates=1))
    assert g.critic is None
    assert _answers(shipped_model, [4], None) == _answers(shipped_model, [4], CriticSettings(candidates=1))


def test_the_register_weight_pulls_the_answer_to_its_target(shipped_model):
    seeds = range(6)
    target = 79.0  # an octave and more above the prompt
    plain = np.mean([abs(np.mean(a) - target) for a in _answers(shipped_model, seeds, None)])
    pulled = np.mean([abs(np.mean(a) - target) for a in _answers(
        shipped_model, seeds, CriticSettings(candidates=8, **OFF | {"register": 1.0}), {"register_target": target})])
    assert pulled < plain - 2, (plain, pulled)


def test_the_key_weight_keeps_notes_in_the_key_heard(shipped_model):
    seeds = range(6)
    pentatonic = {0, 2, 4, 7, 9}  # C pentatonic: no F, no B, against a C major prompt

    def share(answers):
        return np.mean([p % 12 in pentatonic for a in answers for p in a])

    plain = share(_answers(shipped_model, seeds, None))
    kept = share(_answers(shipped_model, seeds, CriticSettings(candidates=8, **OFF | {"key": 1.0}),
                          {"key_pcs": pentatonic}))
    assert kept > plain + (1 - plain) / 2, (plain, kept)  # half the notes outside it are gone


def test_the_leap_weight_makes_smaller_steps(shipped_model):
    seeds = range(6)

    def leaps(answers):  # the share of steps wider than a fourth, the leaps the weight counts
        return np.mean([np.abs(np.diff(a)) > 5 for a in answers])

    arpeggios = [Token(p, 5, 4, 4) for p in (48, 55, 64, 72, 67, 60, 53, 57, 65, 72, 69, 62)]
    hot = {"prompt": arpeggios, "temperature": 1.6}  # a wilder player: leaps enough to count
    plain = leaps(_answers(shipped_model, seeds, None, **hot))
    smooth = leaps(_answers(shipped_model, seeds, CriticSettings(candidates=8, **OFF | {"leap": 2.0}), **hot))
    assert plain > 0.05 and smooth < plain / 2, (plain, smooth)


def test_the_fragment_served_is_what_the_generators_stream_hears():
    """fp32 graph: the batched streams equal the single one (int8's activation scale spans the batch)."""
    g = build_generator(models_dir() / "bach-folk-lstm.onnx", 2)
    attach_critic(g, CriticSettings(candidates=6, fragment_notes=4))
    for token in PROMPT:
        g.feed(token)
    first = g.sample_next()
    proposals = g.critic.proposals
    fragment = list(g.critic.fragment)
    assert fragment[0] == first and len(fragment) == 4
    best = int(np.argmax(g.critic.last_scores))
    served = [first]
    g.commit(first)
    for _ in range(2):
        token = g.sample_next()
        served.append(token)
        g.commit(token)
    assert served == fragment[:3] and g.critic.proposals == proposals, "the fragment's notes, no new proposal"
    np.testing.assert_allclose(g.runner.state[:, :, 0], g.critic.runner.state[:, :, best], atol=1e-4)


def test_anything_else_heard_drops_the_fragment(shipped_model):
    g = build_generator(shipped_model, 2)
    attach_critic(g, CriticSettings(candidates=4))
    for token in PROMPT:
        g.feed(token)
    g.commit(g.sample_next())
    assert len(g.critic.fragment) == 3
    g.feed(Token(71, 3, 4, 5))  # the player plays on: the rest was chosen for another state
    assert g.critic.fragment == []
    before = g.critic.proposals
    g.sample_next()
    assert g.critic.proposals == before + 1
    saved = (g.runner.get_state(), g.runner.logits.copy())
    g.commit(g.sample_next())
    g.runner.reset(saved[0])  # the duet's rollback puts a saved state back
    g.runner.logits = saved[1]
    g.sample_next()
    assert g.critic.proposals == before + 2, "a rolled-back state gets a fragment of its own"


@pytest.mark.parametrize("table, problem", [
    ({"candidates": 0}, "[critic] candidates must be between 1 and 16, got 0"),
    ({"candidates": 99}, "[critic] candidates must be between 1 and 16, got 99"),
    ({"fragment_notes": 9}, "[critic] fragment_notes must be between 1 and 8, got 9"),
    ({"leap": -1}, "[critic] leap must be between 0 and 10, got -1"),
    ({"candidates": "8"}, "[critic] candidates"),
    ({"k": 8}, "[critic] unknown key 'k'"),
])
def test_bad_critic_keys_are_refused_in_one_line(table, problem):
    with pytest.raises(PatchError) as err:
        parse_patch({"critic": table}, "p.toml")
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_the_critic_needs_the_duet():
    with pytest.raises(PatchError, match="needs mode \"continuation\""):
        parse_patch({"engine": {"mode": "harmonize"}, "critic": {"candidates": 4}}, "p.toml")


def test_the_patchs_critic_judges_the_duets_answers_in_a_session():
    patch = parse_patch({"engine": {"tempo_bpm": 120}, "critic": {"candidates": 6, "fragment_notes": 3},
                         "continuation": {"answer_notes": 9}, "osc": {"enabled": False}}, "critic.toml")
    live = LiveEngine(patch, FakeClock(0), MemoryPorts())
    generator = live.mode.generator
    assert generator.critic is not None and generator.critic.k == 6 and generator.critic.f == 3
    for i, pitch in enumerate((67, 69, 71, 72, 74)):
        live.clock.call_at((1 + i) * 250_000_000, lambda p=pitch: live.ports.keyboard.play(p, 90))
        live.clock.call_at((1 + i) * 250_000_000 + 200_000_000, lambda p=pitch: live.ports.keyboard.play(p, 0))
    live.engine.loop(8_000_000_000)
    sent = [m for _, m in live.ports.recorder.sent if m.is_on]
    live.stop()
    assert len(sent) == 9 and generator.critic.proposals >= 3
    assert generator.critic.register_target == pytest.approx(np.mean([67, 69, 71, 72, 74]))


def test_the_readme_lists_the_critics_keys():
    assert ranges_table_markdown(CRITIC_RANGES) in (ROOT / "README.md").read_text()
