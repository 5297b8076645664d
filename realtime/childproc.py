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
