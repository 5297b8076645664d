"""Lead sheets: how well `realtime leadsheet`'s bass, chords and melody fit the chords, beside Bach's chorales.

1. Renders (realtime/leadsheet/render.py, the shipped int8 LSTM for the melody) of six progressions
   written in Roman numerals, three major and three minor, in all 12 keys, with several seeds: of the
   notes beginning on a strong beat (beats 1 and 3), the share that are tones of the chord sounding
   (bass, chords, melody, all); the share of bars whose lowest note on beat 1 is the chord's root; the
   share of melody notes in the key (minor: natural minor with its raised sixth and seventh). The worst
   key, mode and progression is reported too. The same melody without the strong-beat limit (the key's
   scale fitted to the chord on every beat) shows what the limit does.
2. Bach's chorales in 4/4 (music21's corpus, chordified): the soprano and the bass measured the same
   way against the slice sounding (realtime/bench/chorale_lines.py), the bass sounding on beat 1 against
   the slice's root, the soprano against music21's key.

    python benchmarks/leadsheet.py [--quick] [--json out/bench/leadsheet.json]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from realtime.bench.chorale_lines import chord_tones, load
from realtime.bench.common import cache_dir, write_json
from realtime.leadsheet.judge import judge_rendered, share
from realtime.leadsheet.melody import strong
from realtime.leadsheet.parse import parse_text
from realtime.leadsheet.progression import Key, PITCH_NAMES
from realtime.leadsheet.render import melody_generator, render

PROGRESSIONS = {
    "major": ("| I | vi | IV | V7 |", "| ii7 | V7 | Imaj7 | Imaj7 |", "| I IV | ii V7 | iii vi | ii7 V7 |"),
    "minor": ("| i | iv | V7 | i |", "| i | VI | III | VII |", "| iiø7 | V7 | i | i |"),
}
PARTS = ("bass", "chords", "melody", "all")


def _add(total: dict, figures: dict) -> None:
    for name, (hits, count) in figures.items():
        old = total.get(name, (0, 0))
        total[name] = (old[0] + hits, old[1] + count)


def lead_sheets(seeds: int, bars: int, model: str) -> dict:
    generator = melody_generator(model, 0)
    totals: dict = {"limited": {}, "free": {}}
    worst: dict = {}
    renders = 0
    started = time.perf_counter()
    for mode, texts in PROGRESSIONS.items():
        for tonic in range(12):
            key = f"{PITCH_NAMES[tonic]} {mode}"
            for text in texts:
                progression = parse_text(text, key)
                for seed in range(seeds):
                    for kind, limited in (("limited", True), ("free", False)):
                        generator.sampler.rng = np.random.default_rng(seed)
                        figures = judge_rendered(render(progression, bars, generator, strong_beats=limited))
                        _add(totals[kind], figures)
                        renders += 1
                        if limited:
                            for name, (hits, count) in figures.items():
                                value = hits / count if count else 1.0
                                if value < worst.get(name, (2.0,))[0]:
                                    worst[name] = (round(value, 4), key, text, seed)
    seconds = time.perf_counter() - started
    out = {kind: {name: {"share": share(*v), "hits": v[0], "n": v[1]} for name, v in figures.items()}
           for kind, figures in totals.items()}
    out["worst"] = {name: {"share": v[0], "key": v[1], "progression": v[2], "seed": v[3]} for name, v in worst.items()}
    out.update(keys=12, modes=2, progressions=sum(len(t) for t in PROGRESSIONS.values()), seeds=seeds, bars=bars,
               renders=renders, seconds=round(seconds, 2))
    return out


def chorales(limit: int | None, folder) -> dict:
    pieces = load(folder, limit=limit)
    counts = {name: [0, 0] for name in ("soprano", "bass", "bass_root", "soprano_in_key")}
    for piece in pieces:
        key = Key(piece["key"][0], piece["key"][1] if piece["key"][1] in ("major", "minor") else "major")
        in_key = key.in_key()
        for line in ("soprano", "bass"):
            for position, pitch, root, pcs in piece[line]:
                if strong(position, 4):
                    counts[line][1] += 1
                    counts[line][0] += pitch % 12 in chord_tones(root, pcs)
        for pitch, root in piece["downbeats"]:
            counts["bass_root"][1] += 1
            counts["bass_root"][0] += pitch % 12 == root
        for _, pitch, _, _ in piece["soprano"]:
            counts["soprano_in_key"][1] += 1
            counts["soprano_in_key"][0] += pitch % 12 in in_key
    both = [counts["soprano"][i] + counts["bass"][i] for i in (0, 1)]
    out = {name: {"share": share(*v), "hits": v[0], "n": v[1]} for name, v in counts.items()}
    out["all"] = {"share": share(*both), "hits": both[0], "n": both[1]}
    out["chorales"] = len(pieces)
    return out


def _pct(entry: dict | None) -> str:
    return "-" if not entry or entry.get("share") is None else f"{entry['share']:.1%}"


def table(results: dict) -> list[str]:
    ours, free, bach = results["lead_sheet"]["limited"], results["lead_sheet"]["free"], results["chorales"]
    worst = results["lead_sheet"]["worst"]
    rows = [("lead sheet: bass", ours["bass"], ours["bass_root"], None),
            ("lead sheet: chords", ours["chords"], None, None),
            ("lead sheet: melody", ours["melody"], None, ours["melody_in_key"]),
            ("lead sheet: all parts", ours["all"], None, None),
            ("  worst key/progression/seed", worst["all"], worst["bass_root"], worst["melody_in_key"]),
            ("melody without the strong-beat limit", free["melody"], None, free["melody_in_key"]),
            (f"Bach, {bach['chorales']} chorales: soprano", bach["soprano"], None, bach["soprano_in_key"]),
            ("Bach: bass", bach["bass"], bach["bass_root"], None),
            ("Bach: soprano and bass", bach["all"], None, None)]
    lines = ["| what | strong-beat notes that are chord tones | bass root on beat 1 | melody in key |",
             "|---|---|---|---|"]
    lines += [f"| {label} | {_pct(a)} | {_pct(b)} | {_pct(c)} |" for label, a, b, c in rows]
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="out/bench/leadsheet.json")
    parser.add_argument("--quick", action="store_true", help="one seed, 8 bars, 24 chorales")
    parser.add_argument("--model", default="bach-folk-lstm.int8")
    args = parser.parse_args(argv)
    seeds, bars, limit = (1, 8, 24) if args.quick else (3, 16, None)
    results = {"lead_sheet": lead_sheets(seeds, bars, args.model), "chorales": chorales(limit, cache_dir(args.json))}
    for line in table(results):
        print(line)
    r = results["lead_sheet"]
    print(f"{r['renders']} renders ({r['keys']} keys x {r['modes']} modes x {r['progressions'] // r['modes']} "
          f"progressions x {r['seeds']} seeds, with and without the limit), {r['bars']} bars each, {r['seconds']} s")
    ours, bach = r["limited"], results["chorales"]
    results["headline"] = (f"strong-beat chord tones {_pct(ours['all'])} (melody {_pct(ours['melody'])}; Bach's "
                           f"soprano {_pct(bach['soprano'])}), bass root on beat 1 {_pct(ours['bass_root'])} (Bach "
                           f"{_pct(bach['bass_root'])}), melody in key {_pct(ours['melody_in_key'])}")
    results["table"] = table(results)
    write_json(results, args.json)
    return results


if __name__ == "__main__":
    main()
