"""The critic: what the best of K fragments changes in the duet's answers, and what it costs.

Prompts nobody trained on: the first 16 notes of held-out pieces (the test split the model card
records, checked against it). The model hears a prompt, then continues it 32 notes, once sampling
note by note (K = 1, today's duet) and once with the critic (K candidates of F notes, the patch's
default weights), same seed; the critic's context is what the duet gives it live: the key heard in
the prompt (the listener's key tracker), the prompt's register, its last pitches, no chord (a prompt
is a melody alone). Judged against the key of the whole piece (the same tracker over every note):
share of notes in that key, mean leap and share of leaps over a fifth, share of repeated notes,
distance of the mean pitch from the prompt's, and the piece's own next 32 notes as the reference.

Cost, side by side in one process, interleaved: one K = 1 note (sample + step) against one critic
proposal (K streams stepped F - 1 times in one batch, K x F notes sampled, scored), p50 and p99.

With `--guidance G --style NAME` (a model with styles) both sides are timed with that style named and
pushed G more (`[model] style_guidance`): each stream is stepped with an unstyled twin, so the critic's
batch doubles.

    python benchmarks/critic.py [--quick] [--candidates 8] [--model M] [--guidance G --style NAME] [--json F]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from realtime.bench.common import quiet_gc, summary_us, write_json
from realtime.bench.music_stats import key_of
from realtime.engine.stagecontrols import require_style
from realtime.errors import InputError
from realtime.model import controls as ctl
from realtime.model.critic import attach as attach_critic
from realtime.model.generator import build_generator
from realtime.model.sampling import SCALES
from realtime.model.tokens import Token
from realtime.stagesettings import CriticSettings
from realtime.training.card_metrics import held_out

PROMPT, CONTINUE = 16, 32


def judge(pitches: list[int], key: frozenset[int], prompt_mean: float, last: int) -> dict:
    p = np.asarray(pitches)
    steps = np.abs(np.diff(np.concatenate([[last], p])))
    return {"in_key": float(np.mean([x % 12 in key for x in p])), "mean_leap": float(steps.mean()),
            "leaps_over_fifth": float(np.mean(steps > 7)), "repeated": float(np.mean(steps == 0)),
            "register_distance": float(abs(p.mean() - prompt_mean))}


def answer(generator, prompt: np.ndarray, candidates: int) -> list[int]:
    generator.reset()
    for row in prompt:
        generator.feed(Token(*map(int, row)))
    if generator.critic is not None:
        pitches = prompt[:, 0].tolist()
        generator.critic.hear(key_of(pitches), None, float(np.mean(pitches)), pitches[-16:], None)
    return [t.pitch for t in generator.generate(CONTINUE)]


def costs(model: str, critic: CriticSettings, rounds: int, guidance: float = 0.0, style: str | None = None) -> dict:
    plain, judged = (build_generator(model, 5, style_guidance=guidance) for _ in range(2))
    attach_critic(judged, critic)
    for g in (plain, judged):
        if style is not None:  # checked in main
            ctl.set_one_hot(g.runner.controls[0], g.runner.control_index, "style_", style)
        g.warm_up()
        g.critic and g.critic.hear(frozenset(SCALES["major"]), (0, 4, 7), 67.0, [60, 62, 64], None)
    note_ns, propose_ns = np.zeros(rounds, np.int64), np.zeros(rounds, np.int64)
    quiet_gc()
    for i in range(rounds):  # interleaved, so both sides see the same machine
        t0 = time.perf_counter_ns()
        plain.commit(plain.sample_next())
        t1 = time.perf_counter_ns()
        judged.critic.propose(judged)
        t2 = time.perf_counter_ns()
        note_ns[i], propose_ns[i] = t1 - t0, t2 - t1
        if i % 64 == 63:
            plain.reset()
    return {"one_note_k1": summary_us(note_ns), "critic_proposal": summary_us(propose_ns),
            "critic_per_note_p50_us": float(np.median(propose_ns) / 1e3 / critic.fragment_notes)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default="bach-folk-lstm.int8")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--pieces", type=int, default=60)
    parser.add_argument("--guidance", type=float, default=0.0, help="style guidance for the cost (with --style)")
    parser.add_argument("--style", default=None, help="the style named while timing (a model with styles)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.style is not None:  # before the music, which takes a minute
        try:
            require_style("--style", args.style, build_generator(args.model, 0).runner.control_index)
        except InputError as error:
            parser.error(str(error))
    test = [t for t in held_out(args.model, args.quick) if len(t) >= PROMPT + CONTINUE][:8 if args.quick else args.pieces]
    critic = CriticSettings(candidates=args.candidates)
    seeds = (0,) if args.quick else (0, 1)
    rows = {"real": [], "k1": [], f"k{args.candidates}": []}
    for seed in seeds:
        plain, judged = build_generator(args.model, seed), build_generator(args.model, seed)
        attach_critic(judged, critic)
        for piece in test:
            prompt, real = piece[:PROMPT], piece[PROMPT:PROMPT + CONTINUE, 0].tolist()
            key, mean, last = key_of(piece[:, 0]), float(prompt[:, 0].mean()), int(prompt[-1, 0])
            if seed == seeds[0]:
                rows["real"].append(judge(real, key, mean, last))
            rows["k1"].append(judge(answer(plain, prompt, 1), key, mean, last))
            rows[f"k{args.candidates}"].append(judge(answer(judged, prompt, args.candidates), key, mean, last))
    music = {name: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for name, rs in rows.items()}
    results = {"model": args.model, "prompts": len(test), "seeds": list(seeds), "critic": critic.__repr__(),
               "music": music, "guidance": args.guidance, "style": args.style,
               "cost": costs(args.model, critic, 300 if args.quick else 2000, args.guidance, args.style)}
    print(f"{len(test)} held-out prompts x {len(seeds)} seeds, {CONTINUE} notes each ({args.model})")
    print(f"{'':8} {'in key':>7} {'leap':>6} {'>5th':>6} {'repeat':>7} {'reg dist':>9}")
    for name, m in music.items():
        print(f"{name:8} {m['in_key']:7.3f} {m['mean_leap']:6.2f} {m['leaps_over_fifth']:6.3f} {m['repeated']:7.3f} "
              f"{m['register_distance']:9.2f}")
    c = results["cost"]
    print(f"cost{f' (style {args.style}, guidance {args.guidance:g})' if args.style else ''}: one note at K=1 p50 {c['one_note_k1']['p50_us']:.0f} us p99 {c['one_note_k1']['p99_us']:.0f} us; "
          f"a K={args.candidates} proposal of {critic.fragment_notes} notes p50 {c['critic_proposal']['p50_us']:.0f} us "
          f"p99 {c['critic_proposal']['p99_us']:.0f} us")
    if args.json:
        write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
