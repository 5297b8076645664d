"""The duet follows your register: do its answers keep the player's scale, register and pace?

Prompts nobody trained on: the melody (the highest note at each onset) of the first 12 onsets of
held-out pieces (the model card's test split, checked against it), transposed so their mean pitch
is each of 36, 44, ..., 84 and played at 60, 100, 140 and 180 BPM, velocity 80. Each is played into
the duet as patches/duet.toml builds it (its model settings and critic, phrase end, answer length,
a listener that follows the player's tempo), offline on a fake clock (realtime/offline.py `Duet`),
with several seeds; `--model` names the model instead of the patch's, `--no-follow` turns off the
phrase's controls, `--key-pull N` sets `[continuation] key_pull` (the answers' lean into the key). An
answer fits when it is
 - in scale: >= 90% of its notes in the key the listener's key tracker hears in the prompt;
 - in register: its mean pitch within 5 semitones of the prompt's;
 - in pace: its median onset interval (ms) within 2x of the prompt's, either way.
Reported per register row and overall, each and all three together, and Spearman's rank
correlation between the prompt's mean pitch and the answer's over every run. The reference row: held-out
pieces themselves, the next 24 melody notes after their first 12 judged as an answer is, which says
what the criteria ask of real music.

For a model that hears controls, the control response too: held-out prompts heard and answered
(24 notes) with one control set by hand over its range, the others at the card's defaults;
Spearman's rank correlation between the control and what the answer measures (register: mean
pitch; density: onsets per beat; dynamics: mean velocity).

    python benchmarks/follow.py [--quick] [--model game-lstm.int8] [--no-follow] [--key-pull 0] [--json out/bench/follow.json]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from realtime.bench.common import write_json
from realtime.bench.music_stats import key_of
from realtime.bench.stagegen import SWEEPS, answer_measures
from realtime.clock import FakeClock
from realtime.events import NoteSequence
from realtime.listen import Listener
from realtime.model.generator import build_generator
from realtime.model.tokens import DURATION_BEATS, IOI_BEATS, Token, duration_bucket, ioi_bucket
from realtime.model.tokens import velocity_bucket
from realtime.modes import _duet_generator
from realtime.offline import Duet
from realtime.patch import compile_patch, load_patch
from realtime.training.card_metrics import held_out as test_split

ROOT = Path(__file__).resolve().parents[1]
REGISTERS = (36, 44, 52, 60, 68, 76, 84)
TEMPOS = (60, 100, 140, 180)
ONSETS, ANSWER = 12, 24


def melody(tokens: np.ndarray, count: int = ONSETS) -> list[tuple[float, float, int]]:
    """(onset, duration, pitch) in beats of the highest note at each of the first `count` onsets."""
    onsets = np.cumsum(np.asarray(IOI_BEATS)[tokens[:, 1]])
    notes: dict[float, tuple[float, int]] = {}
    for onset, row in zip(onsets, tokens):
        key = round(float(onset), 6)
        if key not in notes or row[0] > notes[key][1]:
            notes[key] = (DURATION_BEATS[row[2]], int(row[0]))
    first = min(notes)
    return [(on - first, d, p) for on, (d, p) in sorted(notes.items())[:count]]


def shift_to(line, register: int) -> int:
    """Semitones that move a melody's mean pitch to `register`."""
    return round(register - np.mean([p for _, _, p in line]))


def prompt(line, register: int, bpm: float) -> NoteSequence:
    shift = shift_to(line, register)
    return NoteSequence.from_absolute([(on, d, p + shift, 80) for on, d, p in line], "beats", bpm)


def median_ioi_ms(onsets_ms) -> float:
    distinct = np.unique(np.round(np.asarray(onsets_ms, dtype=np.float64)))
    gaps = np.diff(distinct)
    gaps = gaps[gaps > 20.0]  # chord tones are one onset
    return float(np.median(gaps)) if len(gaps) else float("nan")


def judge(phrase: NoteSequence, answer) -> dict:
    pitches = [n.pitch for n in phrase.notes]
    if not answer:
        return {"scale": False, "register": False, "pace": False, "all": False, "distance": float("nan")}
    sung = np.asarray([p for _, _, p, _ in answer])
    scale = key_of(pitches)
    distance = float(sung.mean() - np.mean(pitches))
    ratio = median_ioi_ms([o * 1e3 for o, *_ in answer]) / median_ioi_ms(phrase.to_ms().onsets())
    fits = {"scale": float(np.mean([p % 12 in scale for p in sung])) >= 0.9, "register": abs(distance) <= 5.0,
            "pace": bool(0.5 <= ratio <= 2.0)}
    return {**fits, "all": all(fits.values()), "distance": distance}


def long_pieces(model: str, quick: bool) -> list[np.ndarray]:
    """The held-out pieces of the model's test split long enough for a prompt (loaded once a run)."""
    return [t for t in test_split(model, quick) if len(t) >= 48]


def held_out(pieces: list[np.ndarray], count: int) -> list:
    lines = [melody(t) for t in pieces]
    return [line for line in lines if len(line) == ONSETS][:count]


def the_pieces_own(pieces: list[np.ndarray]) -> dict:
    """The reference: every held-out piece long enough, its first ONSETS melody notes as the prompt and its
    next ANSWER judged as an answer is (scale, register and pace do not change with transposition or
    tempo, so once per piece)."""
    judged = []
    for tokens in pieces:
        line = melody(tokens, ONSETS + ANSWER)
        if len(line) == ONSETS + ANSWER:
            beat_s, shift = 60.0 / TEMPOS[0], shift_to(line[:ONSETS], 60)  # moved with its prompt
            heard = [(on * beat_s, d * beat_s, p + shift, 80) for on, d, p in line[ONSETS:]]
            judged.append(judge(prompt(line[:ONSETS], 60, TEMPOS[0]), heard))
    return summarize(judged) if judged else {}


def grid(settings, lines, seeds) -> dict:
    rows = {r: [] for r in REGISTERS}
    for seed in seeds:
        generator = _duet_generator(replace(settings, seed=seed))
        for line in lines:
            for register in REGISTERS:
                for bpm in TEMPOS:
                    phrase = prompt(line, register, bpm)
                    generator.reset()
                    listener = Listener(settings.listen, settings.tempo_bpm)  # the tempo is followed, as live
                    duet = Duet(generator, settings.continuation, FakeClock(), listener=listener)
                    duet.perform(phrase, 0)
                    rows[register].append(judge(phrase, duet.answer(0)))
    table = {str(r): summarize(js) for r, js in rows.items()}
    table["all"] = summarize([j for js in rows.values() for j in js])
    pairs = [(r, r + j["distance"]) for r, js in rows.items() for j in js if np.isfinite(j["distance"])]
    table["all"]["register_spearman"] = float(spearmanr(*zip(*pairs)).statistic)  # prompt's mean vs the answer's
    return table


def summarize(judged: list[dict]) -> dict:
    out = {k: float(np.mean([j[k] for j in judged])) for k in ("scale", "register", "pace", "all")}
    out["mean_distance"] = float(np.nanmean([j["distance"] for j in judged]))
    out["runs"] = len(judged)
    return out


def _tokens(line) -> list[Token]:
    out, previous = [], 0.0
    for on, d, p in line:
        out.append(Token(p, ioi_bucket(on - previous), duration_bucket(d), velocity_bucket(80)))
        previous = on
    return out


def response(model: str, lines, seeds) -> dict:
    """Spearman of each control, set by hand, against what the answers measure (a model with controls)."""
    out = {}
    for seed in seeds:
        generator = build_generator(model, seed)
        runner = generator.runner
        if runner.controls is None:
            return {}
        defaults = runner.controls.copy()
        for name, values in SWEEPS.items():
            xs, ys = out.setdefault(name, ([], []))
            for line in lines:
                for value in values:
                    runner.controls[:] = defaults
                    runner.controls[0, runner.control_index[name]] = value
                    generator.reset()
                    for token in _tokens(line):
                        generator.feed(token)
                    xs.append(value), ys.append(answer_measures(generator.generate(ANSWER))[name])
        runner.controls[:] = defaults
    return {name: float(spearmanr(xs, ys).statistic) for name, (xs, ys) in out.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--patch", default=str(ROOT / "patches" / "duet.toml"))
    parser.add_argument("--model", default=None, help="instead of the patch's [model] name")
    parser.add_argument("--no-follow", action="store_true", help="the phrase's controls off (register, density, ...)")
    parser.add_argument("--key-pull", type=float, default=None, help="instead of the patch's [continuation] key_pull")
    parser.add_argument("--pieces", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    settings = compile_patch(load_patch(args.patch))
    if args.model:
        settings = replace(settings, model=replace(settings.model, name=args.model))
    if args.no_follow:
        settings = replace(settings, continuation=replace(
            settings.continuation, follow_register=False, follow_density=False, follow_dynamics=False,
            follow_key=False, register=None))
    if args.key_pull is not None:
        settings = replace(settings, continuation=replace(settings.continuation, key_pull=args.key_pull))
    model = settings.model.name
    pieces = long_pieces(model, args.quick)
    lines = held_out(pieces, 3 if args.quick else args.pieces)
    seeds = (0,) if args.quick else tuple(range(args.seeds))
    table = grid(settings, lines, seeds)
    controls = response(model, lines, seeds)
    reference = the_pieces_own(pieces)
    follows = not args.no_follow and bool(controls)
    results = {"model": model, "follow": follows, "prompts": len(lines), "seeds": list(seeds),
               "registers": list(REGISTERS), "tempos_bpm": list(TEMPOS), "table": table, "control_spearman": controls,
               "the_pieces_own_continuation": reference,
               "headline": f"{model}{' following the phrase' if follows else ''}: {100 * table['all']['all']:.0f}% of "
                           f"answers fit the prompt's scale, register and pace"}
    print(f"{len(lines)} held-out prompts x {len(REGISTERS)} registers x {len(TEMPOS)} tempos x {len(seeds)} seeds "
          f"({model}{', following the phrase' if follows else ''})")
    print(f"{'register':>8} {'scale':>6} {'reg':>6} {'pace':>6} {'all':>6} {'dist':>6}")
    for row, m in table.items():
        print(f"{row:>8} {100 * m['scale']:5.0f}% {100 * m['register']:5.0f}% {100 * m['pace']:5.0f}% "
              f"{100 * m['all']:5.0f}% {m['mean_distance']:+6.1f}")
    if reference:
        print(f"{'pieces':>8} {100 * reference['scale']:5.0f}% {100 * reference['register']:5.0f}% "
              f"{100 * reference['pace']:5.0f}% {100 * reference['all']:5.0f}% {reference['mean_distance']:+6.1f}"
              f"   <- the pieces' own next {ANSWER} melody notes, judged alike ({reference['runs']} held-out pieces)")
    print(f"Spearman of the prompt's mean pitch against the answer's: {table['all']['register_spearman']:.2f}")
    if controls:
        print("control response (Spearman, control vs answer): "
              + ", ".join(f"{k} {v:.2f}" for k, v in controls.items()))
    if args.json:
        write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
