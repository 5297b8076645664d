"""The benchmark harness: discovery, one-line failures, the report's files, and the measures themselves.

No timings are asserted here; the figures live in `realtime bench`'s report.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import require_module

from realtime.bench import music_stats
from realtime.bench.machine import cache_line, caches, machine_info
from realtime.bench.runner import TIMEOUT_S, discover, run_all
from realtime.cli import main as cli_main
from realtime.model.markov import MarkovModel
from realtime.model.generator import ModelRunner
from realtime.model.tokens import FIELDS, START

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str):
    """Import benchmarks/NAME.py as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_script(folder: Path, name: str, body: str) -> None:
    """A benchmark script following the convention (stdlib only), with `body` as the work."""
    text = textwrap.dedent('''
        import argparse, json, os, subprocess, sys, time
        def main(argv=None):
            parser = argparse.ArgumentParser()
            parser.add_argument("--json", required=True)
            parser.add_argument("--quick", action="store_true")
            args = parser.parse_args(argv)
            result = {}
        {body}
            with open(args.json, "w") as f:
                json.dump(result, f)
            return result
        if __name__ == "__main__":
            main()
    ''').replace("{body}", textwrap.indent(textwrap.dedent(body), "    "))
    (folder / f"{name}.py").write_text(text)


# --- discovery and running ----------------------------------------------------------------------
def test_discover_puts_the_core_benchmarks_first_and_leaves_helpers_out(tmp_path):
    for name in ("zebra", "_helper", "latency", "model_step", "alpha", "quality"):
        (tmp_path / f"{name}.py").write_text("")
    (tmp_path / "README.md").write_text("")
    assert [p.stem for p in discover(tmp_path)] == ["model_step", "quality", "latency", "alpha", "zebra"]


def test_a_failing_or_skipped_script_costs_one_line_and_the_rest_still_runs(tmp_path):
    scripts, out = tmp_path / "benchmarks", tmp_path / "out"
    scripts.mkdir()
    write_script(scripts, "good", 'result.update(headline="42 widgets per second", quick=args.quick)')
    write_script(scripts, "crash", 'raise RuntimeError("the widget exploded")')
    write_script(scripts, "absent", 'result["skipped"] = "jackd is not installed (Debian jackd2)"')
    write_script(scripts, "silent", 'sys.exit(0) if False else None\nargs.json = os.devnull')
    (scripts / "old.py").write_text("import argparse\nargparse.ArgumentParser().parse_args()\n")  # no --json, no --quick
    lines = []
    results = run_all(out, quick=True, scripts_dir=scripts, log=lines.append)

    status = {name: entry["status"] for name, entry in results["benchmarks"].items()}
    assert status == {"absent": "skipped", "crash": "failed", "good": "ok", "old": "failed", "silent": "failed"}
    bench = results["benchmarks"]
    assert bench["good"]["results"] == {"headline": "42 widgets per second", "quick": True}
    assert "RuntimeError: the widget exploded" in bench["crash"]["reason"]
    assert bench["absent"]["reason"] == "jackd is not installed (Debian jackd2)"
    assert "unrecognized arguments" in bench["old"]["reason"]
    assert "no readable JSON" in bench["silent"]["reason"]
    assert "Traceback" in (out / "logs" / "crash.log").read_text()  # the whole story is in the log

    saved = json.loads((out / "results.json").read_text())
    assert saved["benchmarks"].keys() == bench.keys() and saved["mode"] == "quick"
    summary = (out / "summary.md").read_text()
    for name, entry in bench.items():
        row = [line for line in summary.splitlines() if line.startswith(f"| `{name}.py`")]
        assert len(row) == 1 and entry["status"] in row[0]
    assert "the widget exploded" in summary and "42 widgets per second" in summary
    assert any("crash: failed" in line for line in lines)


def test_jobs_run_scripts_at_once_and_keep_their_order(tmp_path):
    """The suite's smoke run takes two at a time: here the first script waits for a file only the second
    writes, so it can pass only if both run at once; the report keeps discovery order and says so."""
    scripts, out = tmp_path / "benchmarks", tmp_path / "out"
    scripts.mkdir()
    marker = tmp_path / "second-ran"
    write_script(scripts, "a_waits", f"""
        deadline = time.monotonic() + 30
        while not os.path.exists({str(marker)!r}) and time.monotonic() < deadline:
            time.sleep(0.02)
        result["saw_second"] = os.path.exists({str(marker)!r})""")
    write_script(scripts, "b_writes", f"open({str(marker)!r}, 'w').close()")
    results = run_all(out, quick=True, scripts_dir=scripts, log=lambda _: None, jobs=2)

    assert list(results["benchmarks"]) == ["a_waits", "b_writes"]
    assert results["benchmarks"]["a_waits"]["results"] == {"saw_second": True}
    assert results["parallel_jobs"] == 2 and "2 benchmarks ran at once" in (out / "summary.md").read_text()


def test_bench_runs_from_a_folder_other_than_the_repository(tmp_path, monkeypatch, capsys):
    """`realtime bench` started elsewhere: relative --out-dir and benchmarks folder are the caller's."""
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    (repo / "benchmarks").mkdir(parents=True)
    elsewhere.mkdir()
    write_script(repo / "benchmarks", "widgets", 'result.update(headline="7 widgets", cwd=os.getcwd())')
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("REALTIME_BENCHMARKS", os.path.relpath(repo / "benchmarks", elsewhere))
    assert cli_main(["bench", "--quick", "--out-dir", "report"]) == 0
    capsys.readouterr()
    saved = json.loads((elsewhere / "report" / "results.json").read_text())
    entry = saved["benchmarks"]["widgets"]
    assert entry["status"] == "ok", entry.get("reason")
    assert entry["results"]["headline"] == "7 widgets"
    assert Path(entry["results"]["cwd"]) == repo.resolve()  # scripts still run in the repository
    assert (elsewhere / "report" / "widgets.json").exists() and not (repo / "report").exists()


def test_rerunning_one_benchmark_keeps_the_others_from_the_last_run(tmp_path, monkeypatch):
    scripts, out = tmp_path / "benchmarks", tmp_path / "out"
    scripts.mkdir()
    write_script(scripts, "first", 'result["headline"] = "first, run " + os.environ.get("RUN", "?")')
    write_script(scripts, "second", 'result["headline"] = "second, run " + os.environ.get("RUN", "?")')
    monkeypatch.setenv("RUN", "1")
    run_all(out, quick=True, scripts_dir=scripts, log=lambda _: None)
    monkeypatch.setenv("RUN", "2")
    results = run_all(out, quick=True, only="second", scripts_dir=scripts, log=lambda _: None)
    assert list(results["benchmarks"]) == ["first", "second"]
    assert results["benchmarks"]["first"]["results"]["headline"] == "first, run 1"
    assert results["benchmarks"]["second"]["results"]["headline"] == "second, run 2"
    assert list(results["kept_from_earlier"]) == ["first"]
    assert "kept from earlier runs of the same mode: first" in (out / "summary.md").read_text()
    full = run_all(out, quick=False, only="second", scripts_dir=scripts, log=lambda _: None)
    assert list(full["benchmarks"]) == ["second"]  # a quick run's figures never join a full report


def test_a_given_timeout_replaces_the_default_for_every_script(tmp_path, monkeypatch):
    scripts, out = tmp_path / "benchmarks", tmp_path / "out"
    scripts.mkdir()
    write_script(scripts, "slow", "time.sleep(3)")
    monkeypatch.setitem(TIMEOUT_S, True, 1.0)
    results = run_all(out, quick=True, scripts_dir=scripts, log=lambda _: None, timeout_s=30.0)
    assert results["benchmarks"]["slow"]["status"] == "ok"  # 3 s: over the default, inside the given 30 s
    results = run_all(out, quick=True, scripts_dir=scripts, log=lambda _: None, timeout_s=1.0)
    assert results["benchmarks"]["slow"]["reason"] == "timed out after 1 s"


def test_a_script_that_hangs_is_stopped_with_everything_it_started(tmp_path, monkeypatch):
    scripts, out = tmp_path / "benchmarks", tmp_path / "out"
    scripts.mkdir()
    pid_file = tmp_path / "child.pid"
    write_script(scripts, "hang", f'''
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(60)
    ''')
    write_script(scripts, "next", 'result["headline"] = "still ran"')
    monkeypatch.setitem(TIMEOUT_S, True, 2.0)
    results = run_all(out, quick=True, scripts_dir=scripts, log=lambda _: None)
    assert results["benchmarks"]["hang"]["status"] == "failed"
    assert results["benchmarks"]["hang"]["reason"] == "timed out after 2 s"
    assert results["benchmarks"]["next"]["status"] == "ok"
    child = int(pid_file.read_text())
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the hung script's child process is still running")


def test_only_with_an_unknown_name_is_a_one_line_error(tmp_path, capsys):
    code = cli_main(["bench", "--only", "no-such-benchmark", "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "no-such-benchmark" in err and "model_step" in err


# --- machine ------------------------------------------------------------------------------------
def test_cache_sizes_are_read_from_the_sysfs_layout(tmp_path):
    layout = [(1, "Data", "32K", "0"), (1, "Instruction", "32K", "0"), (2, "Unified", "512K", "0"), (3, "Unified", "32768K", "0-1")]
    for i, (level, kind, size, shared) in enumerate(layout):
        folder = tmp_path / f"index{i}"
        folder.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size), ("shared_cpu_list", shared)):
            (folder / name).write_text(f"{value}\n")
    entries = caches(tmp_path)
    assert [(c["level"], c["size"]) for c in entries] == [(1, "32K"), (1, "32K"), (2, "512K"), (3, "32768K")]
    assert cache_line(entries) == "L1d 32K, L1i 32K, L2 512K, L3 32768K (shared by CPUs 0-1)"
    info = machine_info()
    assert info["cores"] >= 1 and info["cpu"] and info["versions"]["numpy"] == np.__version__


# --- musical statistics -------------------------------------------------------------------------
def tokens(pitches, ioi=5, duration=4):
    return np.array([(p, ioi if i else 0, duration, 4) for i, p in enumerate(pitches)], dtype=np.int64)


def test_muspy_metrics_of_a_scale_and_of_all_twelve_pitch_classes():
    scale = music_stats.muspy_metrics(tokens([60, 62, 64, 65, 67, 69, 71, 72]))
    assert scale["scale_consistency"] == 1.0 and scale["pitch_range"] == 12
    chromatic = music_stats.muspy_metrics(tokens(range(60, 72)))
    assert chromatic["pitch_class_entropy"] == pytest.approx(math.log2(12))
    assert chromatic["scale_consistency"] == pytest.approx(7 / 12)


def test_skyline_takes_the_top_note_of_each_chord():
    chorale = np.array([(48, 0, 7, 4), (55, 0, 7, 4), (64, 0, 7, 4), (72, 0, 7, 4),  # one chord, top 72
                        (50, 8, 7, 4), (74, 0, 7, 4),                                  # next onset, top 74
                        (71, 8, 7, 4)], dtype=np.int64)
    assert music_stats.skyline_intervals(chorale).tolist() == [2, -3]
    hist = music_stats.interval_histogram([chorale])
    assert hist[12 + 2] == hist[12 - 3] == 0.5


def test_distances_are_zero_for_the_same_music_and_large_for_noise():
    rng = np.random.default_rng(0)
    tonal = [tokens(rng.choice([60, 62, 64, 65, 67, 69, 71], 48)) for _ in range(30)]
    noise = [tokens(rng.integers(48, 84, 48), ioi=int(rng.integers(1, 14))) for _ in range(30)]
    same = music_stats.distance(music_stats.describe(tonal), music_stats.describe(tonal))
    assert same["interval_js_bits"] == 0 and same["ioi_js_bits"] == 0
    assert same["pitch_class_entropy_overlap"] == pytest.approx(1, abs=1e-3)
    far = music_stats.distance(music_stats.describe(noise), music_stats.describe(tonal))
    assert far["scale_consistency_overlap"] < 0.2 and far["ioi_js_bits"] > 0.5
    assert far["scale_consistency_mean_diff"] < -0.2
    assert music_stats.js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)


# --- the measures inside the scripts ------------------------------------------------------------
def test_batched_scoring_equals_scoring_each_piece_alone(shipped_model):
    # on the fp32 graph: int8's dynamic quantization scales the activations over the whole batch, so a
    # piece's int8 scores move a little with its batch-mates (3.6e-3 nats here), which is not what this tests
    shipped_model = shipped_model.with_name(shipped_model.name.replace(".int8", ""))
    quality = load_script("quality")
    rng = np.random.default_rng(1)
    pieces = [np.stack([rng.integers(55, 80, n), rng.integers(1, 9, n), rng.integers(0, 9, n), np.full(n, 4)], 1)
              for n in (5, 11, 3)]
    batched = quality.lstm_scores(shipped_model, pieces, batch=2)  # padding, and a group of one
    runner = ModelRunner(shipped_model)
    slices, nll, hits = runner_slices(), 0.0, 0
    for piece in pieces:
        runner.reset()
        logits = runner.step(*[START[f] for f in FIELDS])[0].astype(np.float64)
        for note in piece:
            for i, f in enumerate(FIELDS):
                head = logits[slices[f]]
                nll += np.log(np.exp(head - head.max()).sum()) + head.max() - head[note[i]]
            hits += int(logits[slices["pitch"]].argmax() == note[0])
            logits = runner.step(*note)[0].astype(np.float64)
    assert batched["notes"] == 19 and batched["pitch_accuracy"] == round(hits / 19, 4)
    assert batched["nll"] == pytest.approx(nll / 19, abs=1e-4)


def runner_slices():
    from realtime.model.modelfile import field_slices

    return field_slices()


def test_markov_scores_agree_with_the_models_own_nll():
    quality = load_script("quality")
    rng = np.random.default_rng(2)
    train = [rng.integers(60, 72, 40).tolist() for _ in range(20)]
    model = MarkovModel(max_order=8).fit(train)
    held = [np.stack([rng.integers(60, 72, 30)] + [np.zeros(30, np.int64)] * 3, 1) for _ in range(3)]
    scores = quality.markov_scores(model, held)
    for order in (1, 4, 8):
        assert scores[order]["pitch_nll"] == pytest.approx(model.nll((h[:, 0].tolist() for h in held), order=order), abs=1e-4)
        assert 0 <= scores[order]["pitch_accuracy"] <= 1


def test_batched_streams_each_choose_their_own_next_note(shipped_model):
    scaling = load_script("scaling")
    streams = scaling.BatchedStreams(shipped_model, batch=8)
    before = streams.notes.copy()
    times = streams.run(3)
    assert len(times) == 3 and (times > 0).all()
    assert not np.array_equal(before, streams.notes)
    assert (streams.notes[:, 0] < 128).all() and (streams.notes[:, 1] < 15).all()
    assert len({tuple(row) for row in streams.notes}) > 1  # not one stream copied eight times


def test_a_long_performance_is_summarised_in_bins(shipped_model):
    scaling = load_script("scaling")
    length = scaling.length(shipped_model, 2_500)
    assert length["events"] == 2_500 and length["bin_events"] == 1_000
    assert len(length["bin_p50_us"]) == len(length["bin_p99_us"]) == 2
    assert length["state_finite"] and length["last_over_first_tenth_p50"] > 0


def test_the_jitter_series_is_thinned_but_keeps_both_ends():
    latency = load_script("latency")
    sent = [(1_000_000_000 + i * 10_000_000, 1_000_000_000 + i * 10_000_000 + 20_000 * i) for i in range(100)]
    series = latency._series(sent, 1_000_000_000, points=10)
    assert len(series["t_s"]) == len(series["late_ms"]) == 10
    assert series["t_s"][0] == 0 and series["t_s"][-1] == pytest.approx(0.99)
    assert series["late_ms"][-1] == pytest.approx(99 * 0.02)


def test_in_process_rows_say_they_measure_punctuality_and_count_every_trial():
    latency = load_script("latency")
    run = latency.in_process(4)
    assert "punctuality" in run["measures"] and "not a reaction time" in run["measures"]
    assert run["trials"] == 4 and run["reaction"]["n"] + run["no_answer"] == 4  # none dropped silently
    ready = run["answer_ready"]
    assert ready["n"] == run["reaction"]["n"] and "chosen" in ready["measures"]
    # the first answer note is ready during the silence, long before it is due
    assert 0 < ready["p50_ms"] < latency.PHRASE_END_MS


def test_an_evaluation_on_another_split_than_the_cards_stops_in_one_line(tmp_path):
    from realtime.errors import InputError
    from realtime.training.card_metrics import check_split
    from realtime.training.data import Split

    piece = lambda n: np.zeros((n, 4), dtype=np.int64)  # noqa: E731
    split = Split({"a": piece(5), "b": piece(3)}, {"c": piece(4)}, {"d": piece(6), "e": piece(2)})
    card = {"training": {"split": {"train": {"pieces": 2, "notes": 8}, "valid": {"pieces": 1, "notes": 4},
                                   "test": {"pieces": 2, "notes": 8, "names": ["d", "e"]}}}}
    check_split("m.json", card, split)  # the same split: silent
    check_split("m.json", card, Split({"a": piece(5)}, {}, {"d": piece(6)}), subset=True)  # part of it: fine too
    other = Split({"a": piece(5), "d": piece(6)}, {"c": piece(4)}, {"b": piece(3), "e": piece(2)})
    for candidate, subset in ((other, False), (other, True)):
        with pytest.raises(InputError) as caught:
            check_split("m.json", card, candidate, subset=subset)
        message = str(caught.value)
        assert len(message.splitlines()) == 1 and message.startswith("m.json: the evaluated split is not the card's")


def test_each_card_carries_figures_measured_on_its_own_graph(tmp_path):
    require_module("torch", "exporting a graph needs the train extra: pip install -e '.[train]'")
    from realtime.training.card_metrics import lstm_scores, measure_cards
    from realtime.training.data import Split, split_by_piece
    from realtime.training.export import export_all
    from realtime.training.lstm import NoteLSTM

    rng = np.random.default_rng(3)
    pieces = {f"piece{i}": np.column_stack([rng.integers(55, 80, 40), rng.integers(0, 15, 40), rng.integers(0, 14, 40),
                                            rng.integers(0, 8, 40)]).astype(np.int64) for i in range(60)}
    split = split_by_piece(pieces, seed=0)
    assert isinstance(split, Split) and split.test
    info = {"training": {"corpus": ["synthetic"], "split": {"seed": 0, **split.describe()}},
            "metrics": {"lstm": {"test": {"pitch_nll": 1.0}}}}  # a copied figure the measurement must replace
    __import__("torch").manual_seed(0)
    paths = export_all(NoteLSTM(48, 2).eval(), tmp_path, "card", info)
    measured = measure_cards(paths, split)
    cards = {p.name: json.loads(p.with_suffix(".json").read_text()) for p in paths}
    for path in paths:
        lstm = cards[path.name]["metrics"]["lstm"]
        assert lstm["test"] == lstm_scores(path, list(split.test.values()))  # what the card says is what this graph does
        assert lstm["measured"]["graph"] == path.name and lstm["measured"]["precision"] in path.name.replace(".onnx", ".fp32")
        assert cards[path.name]["training"]["split"]["test"]["names"] == sorted(split.test)
    fp32, int8 = (cards[p.name]["metrics"]["lstm"]["test"] for p in paths)
    assert abs(fp32["pitch_nll"] - int8["pitch_nll"]) < 0.05 and fp32["pitch_nll"] != 1.0  # measured, not copied
    assert measured[paths[1].name]["valid"]["notes"] == split.describe()["valid"]["notes"]


def test_model_step_times_a_model_with_controls_without_the_numpy_reference(tmp_path):
    """`benchmarks/model_step.py --model stage-lstm` crashed in the numpy reference (it steps notes alone:
    a matmul shape error); now that variant is left out, said so, and the rest is timed."""
    import subprocess

    done = subprocess.run([sys.executable, str(BENCHMARKS / "model_step.py"), "--model", "stage-lstm",
                           "--quick", "--no-pin", "--json", str(tmp_path / "step.json")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
    assert "hears controls: no numpy reference" in done.stdout
    variants = json.loads((tmp_path / "step.json").read_text())["variants"]
    assert "numpy reference fp32" not in variants and variants["onnxruntime int8"]["note"]["p50_us"] > 0
