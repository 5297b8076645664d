"""A loaded machine for benchmarks: CPU burners started beside the engine and always stopped again.

A burner is `python3 -c 'while True: pass'` at normal priority, as a DAW, a browser or a light show
would be: each keeps one core busy. They get a parent-death signal, so a crashed benchmark leaves none.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

BURNERS = 2
# the burner asks for its parent-death signal itself (PR_SET_PDEATHSIG = 1), then burns
_BURNER = "import ctypes, signal, sys\nif sys.platform.startswith('linux'):\n" \
          "    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)\nwhile True: pass\n"


@contextlib.contextmanager
def cpu_burners(count: int = BURNERS) -> Iterator[list[int]]:
    """Run `count` busy Python processes for the duration of the block; yields their pids."""
    procs = []
    try:
        for _ in range(count):
            procs.append(subprocess.Popen([sys.executable, "-c", _BURNER]))
        yield [proc.pid for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def load_average() -> float:
    return round(os.getloadavg()[0], 2)
