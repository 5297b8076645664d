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


def interruptible() -> None:
    """Let SIGINT (Ctrl-C, `kill -INT`) stop this process again if it started with SIGINT ignored.

    A shell starts a background job (`cmd &` in a script, `nohup`) with SIGINT ignored, Python keeps
    that, and so does every program it starts: a `realtime run` stopped with SIGINT then ignores it and
    is killed later without its note-offs. A suite started that way once failed 19 tests of the engine
    started and stopped as a user does. Call it in the main thread (a child to be started so: `engine_child`)."""
    try:
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:
        pass  # not the main thread (a child forked from another thread): nothing to restore then


def engine_child() -> None:
    """A `preexec_fn` for an engine a caller stops with SIGINT: it dies with its parent and SIGINT stops it."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # before exec: the new program starts with the default
    except ValueError:
        pass
    die_with_parent()
