"""Child processes that never outlive the engine: a crashed parent must not leave a jackd or a
FluidSynth running (a handful of orphaned JACK servers fill libjack's registry, and new ones fail)."""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A `preexec_fn` for subprocess.Popen: on Linux the child gets SIGTERM when its parent dies."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # without it the child is still stopped on every orderly exit


def clear_stale_jack_registry(shm_dir: str = "/dev/shm") -> bool:
    """When no jackd runs at all, remove JACK's shared-memory registry: servers that were killed or
    whose parent crashed leave their entries there, and after a handful jackd refuses to start ("Too
    many servers already active"). Returns whether anything was removed."""
    import os
    import subprocess
    from pathlib import Path

    running = subprocess.run(["pgrep", "-x", "jackd"], capture_output=True, text=True).stdout.strip()
    if running:
        return False  # a live server owns its entries
    removed = False
    for path in Path(shm_dir).glob("jack*"):
        try:
            os.unlink(path)
            removed = True
        except OSError:
            pass
    return removed
