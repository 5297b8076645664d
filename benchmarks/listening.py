"""Listening: chord recognition against music21, beat tracking through tempo changes, key after a modulation.

1. Chords. Held-out Bach chorales (music21's corpus, `chorales.Iterator` order; the first TUNING
   chorales were the ones looked at while the template penalties and the release memory were chosen,
   and are reported apart) are played into a `Listener` at 100 BPM, every voice. At each beat the
   listener's chord is compared with music21's analysis of the chordified slice sounding there: its
   root (`Chord.root()`), and the quality its intervals make (realtime/bench/chorales.py). Beside it,
   a baseline that names the bass note the root.
2. Beats. Each held-out chorale's soprano line is played at one tempo for 16 beats, then at another
   (20-25% faster or slower, 60-180 BPM), onsets moved by Gaussian jitter (15 ms). Lock: the first
   beat after the change from which the tracker stays locked within 4% of the new tempo (probed
   every half beat to the end). Then: the tempo error and the beat phase error (at the true beats).
   "Octave" allows half or twice the tempo. Also the first lock from a cold start.
3. Key. Pairs of held-out chorales whose music21 keys differ are played one after the other: the
   beats after the join until the tracked key is the second chorale's music21 key and stays so.

    python benchmarks/listening.py [--quick] [--json out/bench/listening.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from realtime.bench.chorales import load
from realtime.bench.common import cache_dir, summary_us, write_json
from realtime.bench.performance import TempoMap, feed, perform
from realtime.listen import Listener
from realtime.listen.chords import PITCH_NAMES
from realtime.settings import ListenSettings

ROOT = Path(__file__).resolve().parents[1]
TUNING = 40  # chorales looked at while tuning (the release memory was fixed on 30-39); later ones are held out
PAIRS = ((60, 75), (75, 60), (80, 100), (100, 80), (100, 125), (125, 100), (120, 150), (150, 120), (144, 180),
         (180, 144))
CHANGE_BEAT, JITTER_MS, TOLERANCE = 16.0, 15.0, 0.04
BEAT_NS = 600_000_000  # chords and keys are played at 100 BPM


def _play(notes, origin_ns: int = 0, bpm: float = 100.0):
    return perform([(on, d, p) for on, d, p in notes], TempoMap(((0.0, bpm),)), origin_ns=origin_ns, legato=1.0)


def chords(pieces: list[dict]) -> dict:
    root = full = bass = counted = in_table = 0
    confusions: dict[str, int] = {}
    for piece in pieces:
        probes = [beat * BEAT_NS + 1_000_000 for beat, *_ in piece["beats"]]
        states = feed(Listener(), _play(piece["notes"]), probes)
        for (beat, true_root, quality, pcs, bass_pc), state in zip(piece["beats"], states):
            counted += 1
            root += state.chord.root == true_root
            bass += bass_pc == true_root
            if quality != "other":
                in_table += 1
                hit = (state.chord.root, state.chord.quality) == (true_root, quality)
                full += hit
                if not hit:
                    label = f"{quality} as {state.chord.quality or 'none'}"
                    confusions[label] = confusions.get(label, 0) + 1
    top = sorted(confusions.items(), key=lambda kv: -kv[1])[:6]
    return {"chorales": len(pieces), "beats": counted, "root_accuracy": round(root / counted, 3),
            "bass_as_root_baseline": round(bass / counted, 3), "beats_in_table": in_table,
            "root_and_quality_accuracy": round(full / in_table, 3), "top_confusions": dict(top)}


def _lock_beat(beats, ok, start: float) -> float | None:
    after = [(b, o) for b, o in zip(beats, ok) if b > start]
    for j, (b, _) in enumerate(after):
        if all(o for _, o in after[j:]):
            return round(b - start, 2)
    return None


def beats(pieces: list[dict], seeds: int) -> dict:
    runs = []
    for n, piece in enumerate(pieces):
        melody = [(on, d, p) for on, d, p in piece["soprano"] if on < CHANGE_BEAT + 12]
        if piece["length"] < CHANGE_BEAT + 8:
            continue
        for k in range(seeds):
            before, after = PAIRS[(n * seeds + k) % len(PAIRS)]
            tempo = TempoMap(((0.0, before), (CHANGE_BEAT, after)))
            events = perform(melody, tempo, jitter_ms=JITTER_MS, seed=n * 97 + k)
            grid = np.arange(1.0, min(piece["length"], CHANGE_BEAT + 12), 0.5)
            listener = Listener(ListenSettings(), tempo_bpm=100.0)
            states = feed(listener, events, [tempo.ns_at(b) for b in grid])
            true = np.array([tempo.bpm_at(b - 1e-9) for b in grid])
            bpm = np.array([s.tempo.bpm or 0.0 for s in states])
            locked = np.array([s.tempo.locked for s in states])
            ratio = bpm / true
            ok = locked & (np.abs(ratio - 1) < TOLERANCE)
            octave = locked & np.any([np.abs(ratio / f - 1) < TOLERANCE for f in (0.5, 1, 2)], axis=0)
            cold = _lock_beat(grid[grid < CHANGE_BEAT], ok[grid < CHANGE_BEAT], 0.0)
            lock = _lock_beat(grid, ok, CHANGE_BEAT)
            after_lock = (grid > CHANGE_BEAT + (lock or 99)) & ok
            whole = after_lock & (grid % 1 == 0)
            phase = np.array([min(s.phase, 1 - s.phase) for s in states])
            onsets = sorted({on for on, _, _ in melody if CHANGE_BEAT < on <= CHANGE_BEAT + (lock or 0)})
            runs.append({"change": f"{before}->{after}", "cold_lock_beats": cold, "lock_beats": lock,
                         "lock_onsets": len(onsets) if lock is not None else None,
                         "octave_lock_beats": _lock_beat(grid, octave, CHANGE_BEAT),
                         "tempo_error_pct": float(np.median(np.abs(ratio[after_lock] - 1)) * 100) if after_lock.any()
                         else None, "phase_error_beats": float(np.median(phase[whole])) if whole.any() else None})
    locks = [r["lock_beats"] for r in runs]
    found = [x for x in locks if x is not None]
    colds = [r["cold_lock_beats"] for r in runs if r["cold_lock_beats"] is not None]
    errors = [r["tempo_error_pct"] for r in runs if r["tempo_error_pct"] is not None]
    phases = [r["phase_error_beats"] for r in runs if r["phase_error_beats"] is not None]
    octave = [r["octave_lock_beats"] for r in runs]
    onsets = [r["lock_onsets"] for r in runs if r["lock_onsets"] is not None]
    return {"runs": len(runs), "jitter_ms": JITTER_MS,
            "locked_within_4_beats": round(int(sum(x <= 4 for x in found)) / len(runs), 3),
            "never_locked": sum(x is None for x in locks), "lock_beats_median": float(np.median(found)) if found else None,
            "lock_beats_p90": float(np.percentile(found, 90)) if found else None,
            "lock_onsets_median": float(np.median(onsets)) if onsets else None,
            "octave_ok_within_4_beats": round(int(sum(x is not None and x <= 4 for x in octave)) / len(runs), 3),
            "tempo_error_pct_median": round(float(np.median(errors)), 2) if errors else None,
            "phase_error_beats_median": round(float(np.median(phases)), 3) if phases else None,
            "cold_lock_beats_median": float(np.median(colds)) if colds else None,
            "cold_never_locked": len(runs) - len(colds),
            "by_change": _by_change(runs)}


def _by_change(runs: list[dict]) -> dict:
    out = {}
    for change in dict.fromkeys(r["change"] for r in runs):
        locks = [r["lock_beats"] for r in runs if r["change"] == change]
        out[change] = {"within_4": int(sum(x is not None and x <= 4 for x in locks)), "of": len(locks)}
    return out


def keys(pieces: list[dict], decay_s: float) -> dict:
    first, settled, end_of_first = [], [], []
    pairs = [(a, b) for a, b in zip(pieces, pieces[1:]) if a["key"] != b["key"]]
    for a, b in pairs:
        offset = int(np.ceil(a["length"]))
        notes = a["notes"] + [(on + offset, d, p) for on, d, p in b["notes"]]
        probe_beats = list(range(offset - 1, offset + int(b["length"])))
        states = feed(Listener(ListenSettings(key_decay_s=decay_s)), _play(notes),
                      [beat * BEAT_NS + 1_000_000 for beat in probe_beats])
        named = [(s.key.tonic, s.key.mode) for s in states]
        end_of_first.append(named[0] == tuple(a["key"]))
        target = tuple(b["key"])
        first.append(next((beat - offset for beat, k in zip(probe_beats, named) if beat >= offset and k == target),
                          None))
        settled.append(next((beat - offset for j, beat in enumerate(probe_beats)
                             if beat >= offset and all(k == target for k in named[j:])), None))
    return {"key_decay_s": decay_s, "pairs": len(pairs), **_beats_summary("first", first),
            **_beats_summary("settled", settled),
            "first_key_agrees_with_music21": round(sum(end_of_first) / len(pairs), 3) if pairs else None}


def _beats_summary(name: str, values: list) -> dict:
    found = [v for v in values if v is not None]
    return {f"{name}_switched": len(found), f"{name}_beats_median": float(np.median(found)) if found else None,
            f"{name}_beats_p90": float(np.percentile(found, 90)) if found else None}


def costs(notes: int = 3000) -> dict:
    """What the engine thread spends per note: `hear`, and the `refresh` after a note-on (tempo, chord, key)."""
    listener = Listener()
    events = perform([(i * 0.5, 0.45, 60 + (i * 7) % 24) for i in range(notes)], TempoMap(((0.0, 110.0),)),
                     jitter_ms=10)
    hear, refresh = [], []
    for at_ns, message in events:
        t0 = time.perf_counter_ns()
        listener.hear(message, at_ns)
        t1 = time.perf_counter_ns()
        listener.refresh(at_ns)
        t2 = time.perf_counter_ns()
        if message.velocity:
            hear.append(t1 - t0)
            refresh.append(t2 - t1)
    return {"hear_us": summary_us(hear), "refresh_after_onset_us": summary_us(refresh)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 held-out chorales instead of all")
    parser.add_argument("--json", default=str(ROOT / "out" / "bench" / "listening.json"))
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        pieces = load(cache_dir(args.json), TUNING + 40 if args.quick else None)
    except ImportError as err:
        result = {"skipped": f"music21 is needed for the chorales ({err})"}
        write_json(result, args.json)
        return result
    tuning, held_out = pieces[:TUNING], pieces[TUNING:]
    report = {"benchmark": "listening", "quick": args.quick,
              "chords_held_out": chords(held_out), "chords_tuning": chords(tuning),
              "beats": beats(held_out, 2 if args.quick else 3), "beats_tuning": beats(tuning, 4),
              "keys": [keys(held_out, decay) for decay in (10.0, ListenSettings().key_decay_s, 40.0)],
              "costs": costs(1000 if args.quick else 5000)}
    c, b, k, cost = report["chords_held_out"], report["beats"], report["keys"][1], report["costs"]
    print(f"{'measure':50} value")
    rows = [("chord root, held-out chorales (music21 root)", c["root_accuracy"]),
            ("  bass-note-as-root baseline", c["bass_as_root_baseline"]),
            ("chord root + quality (template beats)", c["root_and_quality_accuracy"]),
            ("chord root, tuning chorales", report["chords_tuning"]["root_accuracy"]),
            ("tempo change: locked within 4 beats", b["locked_within_4_beats"]),
            ("  lock beats median / p90", f"{b['lock_beats_median']} / {b['lock_beats_p90']}"),
            ("  never locked after the change (runs)", f"{b['never_locked']} of {b['runs']}"),
            ("  onsets after the change until lock, median", b["lock_onsets_median"]),
            ("  within 4 beats allowing half/double", b["octave_ok_within_4_beats"]),
            ("  tempo error after lock, median %", b["tempo_error_pct_median"]),
            ("  beat phase error after lock, median beats", b["phase_error_beats_median"]),
            ("  the same on the tuning chorales", report["beats_tuning"]["locked_within_4_beats"]),
            ("cold start: beats to first lock, median", b["cold_lock_beats_median"]),
            ("hear() per note-on, us p50 / p99", f"{cost['hear_us']['p50_us']} / {cost['hear_us']['p99_us']}"),
            ("refresh() after a note-on, us p50 / p99",
             f"{cost['refresh_after_onset_us']['p50_us']} / {cost['refresh_after_onset_us']['p99_us']}")]
    for x in report["keys"]:
        rows += [(f"key switch (decay {x['key_decay_s']:g} s): first / settled, beats",
                  f"{x['first_beats_median']} / {x['settled_beats_median']} (p90 {x['first_beats_p90']} / "
                  f"{x['settled_beats_p90']}; {x['first_switched']}, {x['settled_switched']} of {x['pairs']})")]
    rows.append(("key of the first chorale = music21's", k["first_key_agrees_with_music21"]))
    for name, value in rows:
        print(f"{name:50} {value}")
    report["headline"] = (f"chord root {c['root_accuracy']:.0%} (bass baseline {c['bass_as_root_baseline']:.0%}), "
                          f"root+quality {c['root_and_quality_accuracy']:.0%}; tempo locked within 4 beats of a change "
                          f"{b['locked_within_4_beats']:.0%}, error {b['tempo_error_pct_median']}%; key switch "
                          f"{k['first_beats_median']} beats")
    report["seconds"] = round(time.monotonic() - started, 1)
    report["pitch_names"] = PITCH_NAMES
    write_json(report, args.json)
    return report


if __name__ == "__main__":
    main()
