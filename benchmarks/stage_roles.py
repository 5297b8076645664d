"""Each control moves the music, per voice: Spearman between a control and what the stage model then plays.

Prompts nobody trained on: the first 12 notes of held-out lines of each role (the model card's test
split, checked against it): melody (chorale sopranos and tunes), bass and inner voices (chorale basses,
altos and tenors). The model hears the prompt, then plays 24 notes, with its role and the piece's style
set, no harmony, and one control set by hand over its range (register 36-84, density 0.5-4 onsets a
beat, dynamics 30-110), the other measured controls at the card's defaults. Spearman's rank
correlation over every run between the control and what the answer measures (register: mean pitch;
density: onsets per beat; dynamics: mean velocity). Target: >= 0.9 for each control and role.

    python benchmarks/stage_roles.py [--quick] [--model stage-lstm.int8] [--json out/bench/stage_roles.json]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.stats import spearmanr

from realtime.bench.common import write_json
from realtime.bench.stagegen import SWEEPS, answer_measures, set_row, test_pieces
from realtime.model.generator import build_generator
from realtime.model.modelfile import load_metadata, resolve_model
from realtime.model.tokens import Token

ROLES = ("melody", "bass", "inner")
PROMPT, ANSWER = 12, 24


def prompts(card: dict, quick: bool, count: int) -> dict[str, list[tuple[np.ndarray, str]]]:
    """Up to `count` (first notes, style) per role, chorale voices and tunes alternating for the melody."""
    out: dict[str, list] = {r: [] for r in ROLES}
    by_style: dict[str, list] = {}
    for _, entry in sorted(test_pieces(card, quick).items()):
        for role, line in entry["lines"]:
            if role in out and len(line) >= PROMPT:
                by_style.setdefault((role, entry["style"]), []).append((line[:PROMPT, :4], entry["style"]))
    for role in ROLES:
        pools = [pool for (r, _), pool in sorted(by_style.items()) if r == role]
        for i in range(max((len(p) for p in pools), default=0)):  # round robin over the styles
            out[role] += [p[i] for p in pools if i < len(p)]
        out[role] = out[role][:count]
    return out


def sweep(model: str, lines, role: str, seeds) -> dict:
    out = {}
    for seed in seeds:
        generator = build_generator(model, seed)
        row = generator.runner.controls[0]
        for name, values in SWEEPS.items():
            xs, ys = out.setdefault(name, ([], []))
            for prompt, style in lines:
                for value in values:
                    set_row(row, {name: value}, role=role, style=style)
                    generator.reset()
                    for token in prompt:
                        generator.feed(Token(*map(int, token)))
                    xs.append(value), ys.append(answer_measures(generator.generate(ANSWER))[name])
    return {name: {"spearman": float(spearmanr(xs, ys).statistic),
                   "means": [float(np.mean([y for x, y in zip(xs, ys) if x == v])) for v in SWEEPS[name]]}
            for name, (xs, ys) in out.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default="stage-lstm.int8")
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    card = load_metadata(resolve_model(args.model))
    lines = prompts(card, args.quick, 3 if args.quick else args.prompts)
    seeds = (0,) if args.quick else tuple(range(args.seeds))
    table = {role: sweep(args.model, lines[role], role, seeds) for role in ROLES if lines[role]}
    print(f"{args.model}: Spearman of each control against the answer ({', '.join(f'{len(v)} {k}' for k, v in lines.items())} "
          f"held-out prompts x {len(seeds)} seeds x 5 values)")
    print(f"{'role':>7} " + " ".join(f"{name:>9}" for name in SWEEPS) + "   means along each sweep")
    for role, m in table.items():
        print(f"{role:>7} " + " ".join(f"{m[n]['spearman']:9.2f}" for n in SWEEPS) + "   "
              + "; ".join(f"{n} " + " ".join(f"{v:.1f}" for v in m[n]["means"]) for n in SWEEPS))
    worst = min((m[n]["spearman"], f"{role} {n}") for role, m in table.items() for n in SWEEPS)
    results = {"model": args.model, "prompts": {k: len(v) for k, v in lines.items()}, "seeds": list(seeds),
               "sweeps": {k: list(v) for k, v in SWEEPS.items()}, "table": table,
               "headline": f"{args.model}: control-to-answer Spearman >= {worst[0]:.2f} for every role and control "
                           f"(lowest: {worst[1]})"}
    if args.json:
        write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
