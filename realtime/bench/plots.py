"""The report's pictures, drawn from results.json alone (so a rerun of the plots needs no rerun of the work)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import CDF_POINTS


def _figure(width: float = 9.0, height: float = 4.5, cols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(1, cols, i + 1) for i in range(cols)]
    return figure, axes


def _results(results: dict, name: str) -> dict | None:
    entry = results.get("benchmarks", {}).get(name, {})
    return entry.get("results") if entry.get("status") == "ok" else None


def latency_cdfs(results: dict, path: Path) -> bool:
    """Per-event compute cost (engine vs Notochord) and reaction latency (note-off -> answer) as CDFs."""
    noto, lat, step = _results(results, "notochord"), _results(results, "latency"), _results(results, "model_step")
    if not (noto or lat or step):
        return False
    figure, (cost, reaction) = _figure(13, 4.8, 2)
    if noto:
        for entry in noto["engine"].values():
            cost.plot(entry["cdf_us"], CDF_POINTS, label=entry["label"])
        for key, style in (("notochord", "-"), ("notochord_int8", "--")):
            if (noto.get(key) or {}).get("cdf_us"):
                cost.plot(noto[key]["cdf_us"], CDF_POINTS, style, label=noto[key]["label"], color="black", lw=2)
    elif step:
        for name, entry in step["variants"].items():
            if "note_cdf_us" in entry:
                cost.plot(entry["note_cdf_us"], CDF_POINTS, label=f"{name} (per generated note)")
    cost.set_xscale("log")
    cost.set_xlabel("compute per event (us, log scale)")
    cost.set_ylabel("fraction of events")
    cost.set_title("hear a note, choose the next: engine vs Notochord")
    if lat:
        for label, run in lat["runs"].items():
            raw = np.sort(run.get("raw_reaction_ms", []))
            if len(raw):
                reaction.plot(raw, np.linspace(0, 1, len(raw)), label=label)
    reaction.set_xlabel("reaction latency beyond the phrase-end silence (ms)")
    reaction.set_title("player's note-off -> first answer note")
    for ax in (cost, reaction):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return True


def jitter(results: dict, path: Path) -> bool:
    lat = _results(results, "latency")
    series = (lat or {}).get("long_run", {}).get("jitter_series")
    if not series or not series["t_s"]:
        return False
    figure, (ax,) = _figure()
    late_us = np.asarray(series["late_ms"]) * 1000
    ax.plot(series["t_s"], late_us, ".", ms=2, alpha=0.6, label="each note sent")
    budget_us = lat["budget_ms"] * 1000
    if late_us.max() > budget_us / 4:  # otherwise the budget line would flatten every point to zero
        ax.axhline(budget_us, color="red", lw=1, label=f"budget {lat['budget_ms']} ms")
    lr = lat["long_run"]
    ax.set_title(f"output jitter over a {lr['minutes']:.1f} min performance ({lr['burners']} CPU burner(s)): "
                 f"{lr['misses']} misses of {lr['notes_out']} at a {lat['budget_ms']} ms budget")
    ax.set_xlabel("seconds into the performance")
    ax.set_ylabel("sent - scheduled (us)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return True


def cost_vs_size(results: dict, path: Path) -> bool:
    scaling, noto = _results(results, "scaling"), _results(results, "notochord")
    if not scaling:
        return False
    figure, (ax,) = _figure()
    for precision, colour in (("fp32", "tab:blue"), ("int8", "tab:orange")):
        rows = sorted((r for r in scaling["model_size"]["rows"] if r["precision"] == precision), key=lambda r: r["parameters"] or 0)
        x = [r["parameters"] for r in rows]
        ax.plot(x, [r["per_event"]["p50_us"] for r in rows], "o-", color=colour, label=f"engine {precision} p50")
        ax.plot(x, [r["per_event"]["p99_us"] for r in rows], "o--", color=colour, alpha=0.5, label=f"engine {precision} p99")
        for r in rows:
            ax.annotate(f"2x{r['hidden']}", (r["parameters"], r["per_event"]["p50_us"]), fontsize=7,
                        textcoords="offset points", xytext=(4, -10))
    if noto and noto["notochord"].get("per_event"):
        n = noto["notochord"]
        ax.plot([n["info"]["parameters"]] * 2, [n["per_event"]["p50_us"], n["per_event"]["p99_us"]], "ks-",
                label=f"{n['label']} p50, p99")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("compute per event (us)")
    ax.set_title("cost per event versus model size (LSTM 2 layers; random weights except the shipped 2x192)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return True


def cost_vs_streams(results: dict, path: Path) -> bool:
    scaling = _results(results, "scaling")
    if not scaling or not scaling.get("streams"):
        return False
    figure, (per_stream, per_call) = _figure(13, 4.5, 2)
    for label, block in scaling["streams"].items():
        x = [r["streams"] for r in block["rows"]]
        per_stream.plot(x, [r["per_stream_event"]["p50_us"] for r in block["rows"]], "o-", label=f"{label} p50")
        per_call.plot(x, [r["per_call"]["p50_us"] for r in block["rows"]], "o-", label=f"{label} batched, p50")
        per_call.plot(x, [r["streams"] * block["rows"][0]["per_call"]["p50_us"] for r in block["rows"]], ":",
                      label=f"{label}, streams one by one")
    per_stream.set_title("cost per stream-event (one batched call per step)")
    per_stream.set_ylabel("us per stream per event")
    per_call.set_title("cost per call")
    per_call.set_ylabel("us per call")
    for ax in (per_stream, per_call):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrent streams")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return True


def cost_vs_length(results: dict, path: Path) -> bool:
    scaling = _results(results, "scaling")
    length = (scaling or {}).get("length")
    if not length:
        return False
    figure, (ax,) = _figure()
    x = (np.arange(len(length["bin_p50_us"])) + 0.5) * length["bin_events"]
    ax.plot(x, length["bin_p50_us"], label="p50 per bin")
    ax.plot(x, length["bin_p99_us"], alpha=0.6, label="p99 per bin")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("events since the performance began")
    ax.set_ylabel("compute per event (us)")
    ax.set_title(f"{length['graph']}: cost over {length['events']:,} events with carried state "
                 f"(last/first tenth p50 = {length['last_over_first_tenth_p50']})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return True


def quality(results: dict, path: Path) -> bool:
    q = _results(results, "quality")
    if not q or not q["groups"]:
        return False
    group = q["groups"][0]
    sets = [w for w in ("in_domain", "held_out") if group["markov"].get(w)]
    figure, axes = _figure(6.5 * len(sets), 4.5, len(sets))
    for ax, where in zip(axes, sets):
        markov = group["markov"][where]
        orders = sorted(int(o) for o in markov if str(o).isdigit())
        ax.plot(orders, [markov[str(o)]["pitch_nll"] for o in orders], "o-", color="gray", label="Markov (Witten-Bell), by order")
        for name, scores in group["models"].items():
            if scores.get(where) and not scores.get("controls"):  # conditioned models hear the answer's key: not comparable
                ax.axhline(scores[where]["pitch_nll"], label=f"{name}", lw=1.5,
                           ls="--" if name.endswith(".int8") else "-")
        ax.set_xlabel("Markov order")
        ax.set_ylabel("next-pitch NLL (nats per note)")
        label = "in-domain test split" if where == "in_domain" else f"held out of training: {group['test_sets']['held_out']['collection']}"
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return True


def music(results: dict, path: Path) -> bool:
    q = _results(results, "quality")
    block = (q or {}).get("groups", [{}])[0].get("music", {}).get("in_domain") if q and q["groups"] else None
    if not block:
        return False
    figure, (intervals, onsets) = _figure(13, 4.5, 2)
    names = list(block["sets"])
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        d = block["sets"][name]
        x = np.arange(len(d["interval_histogram"])) - 12
        intervals.bar(x + (i - len(names) / 2) * width, d["interval_histogram"], width, label=name)
        onsets.bar(np.arange(len(d["ioi_histogram"])) + (i - len(names) / 2) * width, d["ioi_histogram"], width, label=name)
    intervals.set_xlabel("melodic interval of the top line (semitones, clipped at 12)")
    intervals.set_title("continuations vs the real next notes (in-domain)")
    onsets.set_xlabel("inter-onset bucket (0 = chord tone)")
    onsets.set_title("markov and random keep the real rhythm by construction")
    for ax in (intervals, onsets):
        ax.set_ylabel("fraction of notes")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return True


PLOTS = {"latency_cdf.png": latency_cdfs, "jitter.png": jitter, "cost_vs_size.png": cost_vs_size,
         "cost_vs_streams.png": cost_vs_streams, "cost_vs_length.png": cost_vs_length,
         "quality_nll.png": quality, "quality_music.png": music}


def draw_all(results: dict, out_dir: Path) -> tuple[list[str], list[str]]:
    """Every plot the results have data for; a plot that fails costs a note, not the report."""
    written, notes = [], []
    for name, draw in PLOTS.items():
        try:
            if draw(results, out_dir / name):
                written.append(name)
        except Exception as err:  # a malformed result from one script must not lose the others' plots
            notes.append(f"{name} not drawn: {type(err).__name__}: {str(err)[:160]}")
    return written, notes
