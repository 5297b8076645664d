"""Notochord in a virtual environment of its own, built on demand under the benchmark's cache folder.

Notochord pins an older torch than this project uses and pulls in a dozen packages its import does
not need, so it is installed with --no-deps beside torch==2.13.0 and exactly what `import notochord`
needs (numpy, pandas, mido, tqdm, appdirs, joblib). It never touches the engine's environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

NOTOCHORD_VERSION = "0.8.0"
TORCH = "torch==2.13.0"
IMPORT_NEEDS = ("numpy", "pandas", "mido", "tqdm", "appdirs", "joblib")  # read off notochord's imports
# runs inside Notochord's environment, so it lives with the scripts ("_": not a benchmark of its own)
WORKER = Path(__file__).resolve().parents[2] / "benchmarks" / "_notochord_worker.py"
READY = ".realtime-ready"  # written last: a half-built environment is rebuilt, never used


class NotochordUnavailable(RuntimeError):
    """The environment could not be built or started; the message is one line saying why."""


def _python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("WARNING")]
    return lines[-1][:200] if lines else "no output"


def _pip(python: Path, args: list[str], timeout_s: float) -> None:
    try:
        done = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args],
                              capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise NotochordUnavailable(f"pip install {' '.join(args)} took longer than {timeout_s:.0f} s") from None
    if done.returncode != 0:
        raise NotochordUnavailable(f"pip install {' '.join(args)} failed: {_last_line(done.stderr)}")


def ensure_env(folder: str | Path, version: str = NOTOCHORD_VERSION, timeout_s: float = 1200.0) -> Path:
    """The environment's python, building the environment first when it is missing or half-built."""
    folder = Path(folder)
    python = _python(folder)
    marker = folder / READY
    wanted = {"notochord": version, "torch": TORCH}
    if marker.exists() and python.exists():
        try:
            if json.loads(marker.read_text()) == wanted:
                return python
        except json.JSONDecodeError:
            pass
    marker.unlink(missing_ok=True)
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    except Exception as err:  # ensurepip or the filesystem: say which in one line
        raise NotochordUnavailable(f"could not create a virtual environment in {folder}: {err}") from None
    _pip(python, [TORCH, *IMPORT_NEEDS], timeout_s)
    _pip(python, ["--no-deps", f"notochord=={version}"], timeout_s)
    check = subprocess.run([str(python), "-c", "import notochord"], capture_output=True, text=True, timeout=300)
    if check.returncode != 0:
        raise NotochordUnavailable(f"import notochord failed in its environment: {_last_line(check.stderr)}")
    marker.write_text(json.dumps(wanted))
    return python


class NotochordWorker:
    """A Notochord process that times `feed` + `query` events on request (see benchmarks/_notochord_worker.py)."""

    def __init__(self, python: Path, threads: int = 1, seed: int = 0, cpus: set[int] | None = None,
                 int8: bool = False, free_instrument: bool = False) -> None:
        """Start the worker. It inherits this process's CPU affinity (so a pinned benchmark and its
        worker share one core) unless `cpus` widens it, e.g. to let two torch threads use two cores.
        `int8`: torch's dynamic int8 quantization of the GRU and linear layers; `free_instrument`:
        `query` picks among all instruments instead of being given the player's (`next_inst`)."""
        # -P: the script's folder stays off sys.path, or benchmarks/notochord.py would shadow the package
        cmd = [str(python), "-P", str(WORKER), "--threads", str(threads), "--seed", str(seed),
               *(["--int8"] if int8 else []), *(["--free-instrument"] if free_instrument else [])]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        if cpus and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(self.proc.pid, cpus)  # before torch starts its threads, which inherit it
        self.info = self._read()
        if not self.info.get("ready"):
            raise NotochordUnavailable(f"the Notochord worker did not start: {self.info}")

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            raise NotochordUnavailable(f"the Notochord worker exited: {_last_line(self.proc.stderr.read())}")
        return json.loads(line)

    def run(self, n: int) -> list[int]:
        """Per-event wall times (ns) of the next n events."""
        self.proc.stdin.write(f"run {n}\n")
        self.proc.stdin.flush()
        return self._read()["ns"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> NotochordWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

