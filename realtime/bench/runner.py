"""`realtime bench`: run every script in benchmarks/ by one convention, then write the report.

The convention a script `benchmarks/NAME.py` follows (files starting with `_` are helpers, not run):
 - `main(argv) -> dict`, and `main()` when run as a program;
 - `--json PATH` writes that dict as JSON to PATH; `--quick` makes it finish in well under a minute;
 - the dict may carry "headline" (one line for the summary), "skipped" (why it did not run here,
   e.g. no jackd) and "notes" (one-line remarks).
Each script runs in a process of its own, one after another, so a crash, a hang or a pinned core
stays there: a script that fails or is skipped costs one line in the summary and the rest still runs.
Output: out/bench/results.json, NAME.json per script, logs/NAME.log, PNG plots and summary.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from ..errors import InputError
from .machine import machine_info

ORDER = ("model_step", "notochord", "scaling", "quality", "latency")  # then any others, alphabetically
# By hand these run longer (latency 150 trials and a 10-minute miss run, soak 10 minutes per part);
# shortened here so the whole full report fits in 20 minutes. The summary says so.
FULL_RUN_ARGS = {"latency": ["--trials", "100", "--minutes", "2"], "soak": ["--minutes", "1.5"]}
TIMEOUT_S = {True: 300.0, False: 1200.0}  # per script, quick and full


def benchmarks_dir() -> Path:
    """The benchmark scripts: $REALTIME_BENCHMARKS, else the repository's benchmarks/ folder."""
    return Path(os.environ.get("REALTIME_BENCHMARKS", Path(__file__).resolve().parents[2] / "benchmarks"))


def discover(folder: Path) -> list[Path]:
    """Every runnable script in the folder, the core ones first in a fixed order."""
    scripts = [p for p in folder.glob("*.py") if not p.name.startswith("_")]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(scripts, key=lambda p: (rank.get(p.stem, len(ORDER)), p.stem))


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:240] if lines else "no output"


def run_script(script: Path, out_dir: Path, quick: bool, timeout_s: float, extra: list[str] | None = None) -> dict:
    """Run one script by the convention; returns its status ('ok', 'skipped', 'failed'), reason and results."""
    # absolute: the script runs in the repository's folder, which need not be ours
    json_path = (Path(out_dir) / f"{script.stem}.json").resolve()
    json_path.unlink(missing_ok=True)
    command = [sys.executable, str(script.resolve()), "--json", str(json_path), *(["--quick"] if quick else []), *(extra or [])]
    log_path = out_dir / "logs" / f"{script.stem}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    root = str(script.resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    started = time.monotonic()
    entry: dict = {"script": script.name, "command": " ".join([Path(sys.executable).name, *command[1:]])}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)  # its own process group: a timeout ends its children too
        try:
            _, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            _, stderr = proc.communicate()
            log.write(stderr)
            entry.update(status="failed", reason=f"timed out after {timeout_s:.0f} s",
                         seconds=round(time.monotonic() - started, 1))
            return entry
        except BaseException:  # Ctrl-C: stop the script and whatever it started, then stop
            _kill_group(proc)
            proc.wait()
            raise
        log.write(stderr)
    entry["seconds"] = round(time.monotonic() - started, 1)
    if proc.returncode != 0:
        entry.update(status="failed", reason=f"exit {proc.returncode}: {_last_line(stderr)}")
        return entry
    try:
        results = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        entry.update(status="failed", reason=f"wrote no readable JSON at {json_path.name} ({type(err).__name__})")
        return entry
    entry["results"] = results
    if isinstance(results, dict) and results.get("skipped"):
        entry.update(status="skipped", reason=str(results["skipped"]).splitlines()[0][:240])
    else:
        entry["status"] = "ok"
    return entry


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _keep_earlier(results: dict, previous_path: Path, order: list[str]) -> None:
    """With --only, keep the other benchmarks' entries of the last run of the same mode, marked as such."""
    try:
        previous = json.loads(previous_path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    if previous.get("mode") != results["mode"]:
        return
    kept = {name: entry for name, entry in previous.get("benchmarks", {}).items() if name not in results["benchmarks"]}
    if not kept:
        return
    merged = {**kept, **results["benchmarks"]}
    results["benchmarks"] = {name: merged[name] for name in sorted(merged, key=lambda n: order.index(n) if n in order else len(order))}
    results["kept_from_earlier"] = {name: entry.get("finished_utc", previous.get("started_utc")) for name, entry in kept.items()}
    for name, extra in previous.get("shortened", {}).items():
        if name in kept:
            results.setdefault("shortened", {})[name] = extra


def _names(text: str | None) -> set[str] | None:
    return {n.strip().removesuffix(".py") for n in text.split(",") if n.strip()} if text else None


def run_all(out_dir: str | Path = "out/bench", quick: bool = False, only: str | None = None, skip: str | None = None,
            scripts_dir: str | Path | None = None, log=print, jobs: int = 1, timeout_s: float | None = None) -> dict:
    """Run the benchmarks, then write results.json, the plots and summary.md into out_dir.

    `jobs` > 1 runs that many scripts at once: only for a smoke run (the test suite's), since timing
    figures measured beside another benchmark are not the machine's; `realtime bench` runs one at a time.
    `timeout_s` ends a script that runs longer (default TIMEOUT_S: 300 s quick, 1200 s full): a guard
    against a hang, not a figure; a smoke run beside other work gives it more."""
    from .plots import draw_all
    from .report import write_summary

    folder = Path(scripts_dir) if scripts_dir else benchmarks_dir()
    if not folder.is_dir():
        raise InputError(f"{folder}: no benchmarks folder (run from a checkout of the repository, "
                         "or set REALTIME_BENCHMARKS)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wanted, unwanted = _names(only), _names(skip) or set()
    scripts = [s for s in discover(folder) if (wanted is None or s.stem in wanted) and s.stem not in unwanted]
    if wanted and not scripts:
        raise InputError(f"--only {only}: no such benchmark in {folder} "
                         f"(there are: {', '.join(s.stem for s in discover(folder)) or 'none'})")
    started = time.monotonic()
    results: dict = {"mode": "quick" if quick else "full", "machine": machine_info(),
                     "started_utc": _now(), "benchmarks": {}}
    def run_one(i: int, script: Path) -> dict:
        log(f"[{i}/{len(scripts)}] {script.stem} ...")
        extra = [] if quick else FULL_RUN_ARGS.get(script.stem, [])
        if extra:
            results.setdefault("shortened", {})[script.stem] = extra
        entry = run_script(script, out, quick, timeout_s or TIMEOUT_S[quick], extra)
        entry["finished_utc"] = _now()
        headline = entry.get("results", {}).get("headline") if isinstance(entry.get("results"), dict) else None
        detail = entry.get("reason") or headline or ""
        log(f"[{i}/{len(scripts)}] {script.stem}: {entry['status']} in {entry['seconds']:.0f} s{': ' + detail if detail else ''}")
        return entry

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # each script is its own process
        entries = list(pool.map(run_one, range(1, len(scripts) + 1), scripts))
    results["benchmarks"] = {script.stem: entry for script, entry in zip(scripts, entries)}
    if jobs > 1:
        results["parallel_jobs"] = jobs
    if wanted:
        _keep_earlier(results, out / "results.json", [s.stem for s in discover(folder)])
    notochord = results["benchmarks"].get("notochord", {}).get("results") or {}
    results["notochord_speedup"] = notochord.get("notochord_speedup")
    results["seconds"] = round(time.monotonic() - started, 1)
    try:
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    results["plots"], plot_notes = draw_all(results, out)
    results["plot_notes"] = plot_notes
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    write_summary(results, out / "summary.md")
    log(f"wrote {out / 'results.json'}, {out / 'summary.md'} and {len(results['plots'])} plots in {results['seconds']:.0f} s")
    return results
