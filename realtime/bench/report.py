"""summary.md: the machine at the top, one line per benchmark, then the figures that matter as tables."""

from __future__ import annotations

from pathlib import Path

TARGET_SPEEDUP = 10.0


def _ok(results: dict, name: str) -> dict | None:
    entry = results["benchmarks"].get(name, {})
    return entry.get("results") if entry.get("status") == "ok" else None


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out + [""]


def _us(summary: dict, key: str) -> str:
    value = summary.get(key)
    return "" if value is None else (f"{value:,.0f}" if value >= 100 else f"{value:.1f}")


def machine(results: dict) -> list[str]:
    m = results["machine"]
    v = m["versions"]
    software = ", ".join(f"{k} {v[k]}" for k in ("python", "numpy", "onnxruntime", "numba", "torch", "muspy") if k in v)
    cmd = "realtime bench" + (" --quick" if results["mode"] == "quick" else "")
    lines = ["# realtime benchmark report", "",
             f"`{cmd}`, {results['started_utc']} UTC, {results['seconds']:.0f} s in all.", ""]
    if results.get("parallel_jobs"):
        lines += [f"A smoke run: {results['parallel_jobs']} benchmarks ran at once, so no timing figure here is "
                  "the machine's own.", ""]
    kept = results.get("kept_from_earlier")
    if kept:
        rerun = ",".join(n for n in results["benchmarks"] if n not in kept)
        lines += [f"Rerun with `--only {rerun}`; kept from earlier runs of the same mode: "
                  + ", ".join(f"{name} (finished {when} UTC)" for name, when in kept.items()) + ".", ""]
    lines += _table(["machine", ""], [
        ["CPU", m["cpu"]], ["cores", f"{m['cores']} ({m['usable_cores']} usable by this process)"],
        ["caches", m["cache_summary"]], ["memory", f"{m['memory_gib']} GiB" if m.get("memory_gib") else "unknown"],
        ["OS", m["os"]], ["software", software],
        ["load average (1, 5, 15 min)", f"{m.get('load_average_at_start')} at start, {m.get('load_average_at_end')} at end"]])
    return lines


def status(results: dict) -> list[str]:
    rows = []
    for name, entry in results["benchmarks"].items():
        res = entry.get("results") if isinstance(entry.get("results"), dict) else {}
        said = entry.get("reason") or res.get("headline") or f"figures in {Path(entry['script']).stem}.json"
        rows.append([f"`{entry['script']}`", entry["status"], f"{entry['seconds']:.0f} s", said.replace("|", "/")])
    lines = ["## Benchmarks", ""] + _table(["script", "status", "time", "result (or why not)"], rows)
    shortened = [f"`{name}.py {' '.join(args)}`" for name, args in results.get("shortened", {}).items()]
    if shortened:
        lines += ["Shortened so the full report fits in 20 minutes: " + ", ".join(shortened) + 
                  " (run a script by hand for its longer default).", ""]
    return lines


def notochord(results: dict) -> list[str]:
    noto = _ok(results, "notochord")
    if not noto:
        return []
    lines = ["## Side by side with Notochord", "", noto["definition"] + "; "
             f"{noto['events_per_variant']} events per variant, interleaved in {noto['rounds']} rounds, in the same run; "
             f"each round starts with {noto.get('settle_events_per_round', 0)} untimed events per variant, so no variant "
             "is charged for refilling the cache its neighbour swept.", ""]
    rows = []
    notochords = [e for e in (noto.get("notochord"), noto.get("notochord_int8")) if e and e.get("per_event")]
    for entry in [*noto["engine"].values(), *notochords]:
        s = entry["per_event"]
        rows.append([entry["label"], f"{entry.get('parameters') or 0:,}", f"{entry.get('multiply_adds_per_event') or 0:,}",
                     _us(s, "p50_us"), _us(s, "p99_us"), _us(s, "p99_9_us")])
    lines += _table(["variant", "parameters", "multiply-adds per event", "p50 us", "p99 us", "p99.9 us"], rows)
    pairs = noto.get("comparisons") or []
    if pairs:
        lines += _table(["pairing (like for like first)", "size", "Notochord / this, p50", "p99", "parameters (this vs Notochord)",
                         "multiply-adds (this vs Notochord)"],
                        [[row["pairing"], "same" if row["engine_key"].startswith("same") else "shipped",
                          f"{row['p50']}x", f"{row['p99']}x",
                          f"{row['engine_parameters'] or 0:,} vs {row['notochord_parameters'] or 0:,}",
                          f"{row['engine_multiply_adds'] or 0:,} vs {row['notochord_multiply_adds'] or 0:,}"] for row in pairs])
    n = noto.get("notochord", {})
    fair = next((row for row in pairs if row["engine_key"] == "same_size_fp32" and row["notochord_key"] == "fp32"), None)
    if fair:
        met = fair["p50"] >= TARGET_SPEEDUP and fair["p99"] >= TARGET_SPEEDUP
        lines += [f"Same size, fp32 against fp32: **{fair['p50']}x p50, {fair['p99']}x p99** "
                  f"(target {TARGET_SPEEDUP:.0f}x at both: {'met' if met else 'not met'}). Notochord's `query` "
                  f"is called as `{n.get('query', 'query()')}`.", ""]
    if n.get("all_cores"):
        a = n["all_cores"]
        lines += [f"Notochord with {a['threads']} torch threads on every core (not in the ratio): "
                  f"p50 {_us(a['per_event'], 'p50_us')} us, p99 {_us(a['per_event'], 'p99_us')} us.", ""]
    if n.get("per_event"):
        lines += ["A played note is one event for this engine and two for Notochord (note-on, note-off); "
                  "ratios are per event. Both sides use random weights at the same-size point: compute does not "
                  "depend on the weights' values.", ""]
    if n.get("unavailable"):
        lines += [f"Notochord not timed: {n['unavailable']}", ""]
    return lines


def scaling(results: dict) -> list[str]:
    sc = _ok(results, "scaling")
    if not sc:
        return []
    lines = ["## Scaling", "", f"Cost per event versus model size ({sc['model_size']['events']} events each; "
             "random weights except the shipped model):", ""]
    rows = [[f"2x{r['hidden']}" + (" (shipped)" if r["shipped"] else ""), r["precision"], f"{r['parameters'] or 0:,}",
             r["weights_mb"], _us(r["per_event"], "p50_us"), _us(r["per_event"], "p99_us")]
            for r in sc["model_size"]["rows"]]
    lines += _table(["LSTM", "precision", "parameters", "weights MB", "p50 us", "p99 us"], rows)
    for label, block in sc["streams"].items():
        lines += [f"Concurrent streams, {label} ({block['calls']} batched calls each; sampling every stream included):", ""]
        rows = [[r["streams"], _us(r["per_call"], "p50_us"), _us(r["per_call"], "p99_us"),
                 _us(r["per_stream_event"], "p50_us"), f"{r['speedup_vs_separate_p50']}x"] for r in block["rows"]]
        lines += _table(["streams", "per call p50 us", "per call p99 us", "per stream-event p50 us", "vs one by one"], rows)
    length = sc["length"]
    lines += [f"Performance length: {length['events']:,} events generated in a row with carried state: p50 "
              f"{_us(length['per_event'], 'p50_us')} us, p99 {_us(length['per_event'], 'p99_us')} us; median of the last "
              f"tenth / first tenth = {length['last_over_first_tenth_p50']}, trend {length['slope_us_per_10k_events']} us "
              f"per 10,000 events; state finite: {length['state_finite']}.", ""]
    return lines


def quality(results: dict) -> list[str]:
    q = _ok(results, "quality")
    if not q or not q["groups"]:
        return []
    lines = ["## Quality", ""]
    for group in q["groups"]:
        sets = [w for w in ("in_domain", "held_out") if group["test_sets"].get(w)]
        described = {"in_domain": "in-domain test split", "held_out": "held out of training"}
        header = ["model"]
        for w in sets:
            t = group["test_sets"][w]
            name = described[w] + (f" ({t['collection']})" if w == "held_out" else "")
            header += [f"{name}: pitch NLL", f"accuracy ({t['pieces']} pieces, {t['notes']:,} notes)"]
        rows = []
        for name, scores in group["models"].items():
            label = f"**{name}**" + (" (controls measured from each piece: not comparable)" if scores.get("controls") else "")
            rows.append([label] + [c for w in sets for c in (f"{scores[w]['pitch_nll']:.3f}", f"{scores[w]['pitch_accuracy']:.1%}")])
        orders = sorted(int(o) for o in group["markov"]["in_domain"] if str(o).isdigit())
        for o in orders:
            rows.append([f"Markov order {o}"] + [c for w in sets for c in (
                f"{group['markov'][w][str(o)]['pitch_nll']:.3f}", f"{group['markov'][w][str(o)]['pitch_accuracy']:.1%}")])
        lines += [f"Trained on {', '.join(group['corpus'])}; next-pitch NLL in nats per note; Markov: "
                  f"{group['markov']['training']}.", ""] + _table(header, rows)
        music = group.get("music", {})
        for where in ("in_domain", "held_out"):
            block = music.get(where)
            if not block:
                continue
            rows = []
            for name, d in block["sets"].items():
                dist = block["distance_to_real"].get(name)
                rows.append([name, f"{d['pitch_class_entropy']['mean']:.3f}", f"{d['scale_consistency']['mean']:.3f}",
                             f"{d['polyphony']['mean']:.2f}", f"{d['pitch_range']['mean']:.1f}",
                             f"{dist['interval_js_bits']:.3f}" if dist else "-", f"{dist['ioi_js_bits']:.3f}" if dist else "-",
                             f"{dist['pitch_class_entropy_overlap']:.2f}" if dist else "-",
                             f"{dist['scale_consistency_overlap']:.2f}" if dist else "-"])
            lines += [f"Musical statistics, {described[where]}: {block['sets']['real']['pieces']} prompts of "
                      f"{music['prompt_notes']} notes, {music['continuation_notes']} notes continued by {music['model']} "
                      f"(temperature {music['sampling'].get('temperature')}, top-p {music['sampling'].get('top_p')}); "
                      "real = the pieces' actual next notes:", ""]
            lines += _table(["set", "pitch-class entropy", "scale consistency", "polyphony", "pitch range",
                             "interval JS (bits)", "inter-onset JS (bits)", "PC-entropy overlap", "scale-consistency overlap"], rows)
    lines += ["Pitch-class entropy, scale consistency, polyphony and pitch range: muspy. Our own formulas "
              "(realtime/bench/music_stats.py): top-line intervals and inter-onset histograms, Jensen-Shannon divergence "
              "from the real notes' histograms (0 = same), overlap area of per-piece KDEs (1 = same). "
              "Markov and random continuations keep the real rhythm, so their inter-onset JS is 0 by construction.", ""]
    return lines


def latency(results: dict) -> list[str]:
    lat = _ok(results, "latency")
    if not lat:
        return []
    rows, ready = [], []
    for label, run in lat["runs"].items():
        r, j = run["reaction"], run.get("jitter")
        rows.append([label, r.get("n", 0), f"{r.get('p50_ms', 0):.3f}", f"{r.get('p99_ms', 0):.3f}", f"{r.get('max_ms', 0):.3f}",
                     f"{j['p99_ms']:.3f}" if j and j.get("n") else "", run.get("misses", "")])
        if "answer_ready" in run:
            a = run["answer_ready"]
            ready.append([label, a.get("n", 0), f"{a.get('p50_ms', 0):.3f}", f"{a.get('p99_ms', 0):.3f}",
                          f"{run.get('no_answer', 0)} of {run.get('trials', r.get('n', 0))}"])
    lr = lat["long_run"]
    measures = next((run["measures"] for run in lat["runs"].values() if "measures" in run), None)
    lines = ["## Reaction latency and jitter", "", f"Phrase-end silence {lat['phrase_end_ms']} ms (subtracted), "
             f"budget {lat['budget_ms']} ms." + (f" In-process rows: {measures}." if measures else ""), ""]
    lines += _table(["run", "answered", "beyond the silence p50 ms", "p99 ms", "max ms", "jitter p99 ms", "misses"], rows)
    if ready:
        lines += ["Note-off to answer ready (compute: the player's last note-off until the first answer note is "
                  "chosen and scheduled):", ""]
        lines += _table(["run", "trials timed", "p50 ms", "p99 ms", "trials with no answer"], ready)
    return lines + [f"Long run: {lr['minutes']:.1f} min with {lr.get('burners', 1)} CPU burner(s), {lr['phrases']} phrases, "
                    f"{lr['notes_out']} notes out, {lr['misses']} deadline misses, jitter p99 {lr['jitter'].get('p99_ms', 0):.3f} ms, "
                    f"max {lr['jitter'].get('max_ms', 0):.3f} ms, fallback notes {lr['fallback_notes']}.", ""]


def model_step(results: dict) -> list[str]:
    ms = _ok(results, "model_step")
    if not ms:
        return []
    rows = [[name, _us(r["step"], "p50_us"), _us(r["step"], "p99_us"), _us(r.get("sample", {}), "p50_us"),
             _us(r.get("sample", {}), "p99_us"), _us(r["note"], "p50_us"), _us(r["note"], "p99_us"),
             _us(r["note"], "p99_9_us")] for name, r in ms["variants"].items()]
    return ([f"## Per generated note, shipped model ({ms['model']}, {ms['steps']:,} chained steps)", ""]
            + _table(["variant", "step p50 us", "step p99 us", "sample p50 us", "sample p99 us", "note p50 us",
                      "note p99 us", "note p99.9 us"], rows))


def notes(results: dict) -> list[str]:
    remarks = list(results.get("plot_notes", []))
    for name, entry in results["benchmarks"].items():
        res = entry.get("results") if isinstance(entry.get("results"), dict) else {}
        remarks += [f"{name}: {n}" for n in res.get("notes", []) or []]
    return (["## Notes", ""] + [f"- {r}" for r in remarks] + [""]) if remarks else []


def plots(results: dict) -> list[str]:
    if not results.get("plots"):
        return []
    return ["## Plots", ""] + [f"![{name}]({name})" for name in results["plots"]] + [""]


def write_summary(results: dict, path: Path) -> None:
    lines = machine(results) + status(results)
    for section in (notochord, scaling, quality, latency, model_step, notes, plots):
        try:
            lines += section(results)
        except (KeyError, TypeError, ValueError) as err:  # a script's JSON changed shape: say so, keep the rest
            lines += [f"({section.__name__} section not written: {type(err).__name__}: {err})", ""]
    path.write_text("\n".join(lines))
