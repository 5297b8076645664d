"""Real-time scheduling for the threads that keep time: ask for SCHED_FIFO, say why not in one line.

Why every thread that takes the interpreter lock in the engine's process is raised, not only the
output thread: a thread at normal priority holding the lock can be preempted by any busy program, and
every real-time thread waiting for the lock then waits with it (a priority inversion no lock here
inherits away). Priorities: all below JACK's own client threads (jackd gives them its priority minus 5:
5 by default), which must never wait for a thread of ours that spins or computes (measured: with ours
above them, JACK callbacks missed periods and input events were lost); the output thread at
OUTPUT_PRIORITY, the engine's threads at ENGINE_PRIORITY, the OSC intake process below those, so a flood
it parses cannot starve the engine; anything at SCHED_OTHER (a DAW, a browser, a CPU
burner) runs only when these sleep. The kernel's real-time throttling (95% by default) still leaves the
rest of the machine a share if one of them ever spins. The main thread goes lowest (MAIN_PRIORITY),
without passing it on: it holds the lock now and then too (status line, view, signal handlers; in the
test suite, every test body and the foreign clients' callbacks' neighbours), and when a busy program
preempted it there, JACK callbacks in Python missed whole periods (events lost, or one read twice).
"""

from __future__ import annotations

import contextlib
import os

OUTPUT_PRIORITY = 4  # the scheduler's output thread (it spins the last fraction of a ms)
ENGINE_PRIORITY = 3  # the engine loop, the OSC ring reader, MIDI and OSC input threads
INTAKE_PRIORITY = 2
MAIN_PRIORITY = 1  # the main thread (status line, view, signals; in tests, the test itself)


def try_fifo(what: str, priority: int = ENGINE_PRIORITY, inherit: bool = True) -> str | None:
    """SCHED_FIFO for the calling thread; None if granted, else why not. With `inherit`, threads it
    starts inherit it; without, every thread and process it starts begins at normal priority
    (SCHED_RESET_ON_FORK): for the main thread, whose children (a synth, a server, a compiler) must
    not run above every other program."""
    if not hasattr(os, "sched_setscheduler"):
        return f"{what} runs without real-time priority (not available on this platform)"
    policy = os.SCHED_FIFO if inherit else os.SCHED_FIFO | getattr(os, "SCHED_RESET_ON_FORK", 0)
    try:
        os.sched_setscheduler(0, policy, os.sched_param(priority))
        return None
    except (PermissionError, OSError) as err:
        return f"{what} runs without SCHED_FIFO ({err.strerror or err}); timing may jitter under load"


def current() -> tuple[int, int] | None:
    """The calling thread's policy and priority, for `restore` (None where there is no such thing)."""
    if not hasattr(os, "sched_getscheduler"):
        return None
    return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority


def restore(saved: tuple[int, int] | None) -> None:
    """Give the calling thread back a policy and priority `current` returned."""
    if saved is not None:
        try:
            os.sched_setscheduler(0, saved[0], os.sched_param(saved[1]))
        except OSError:
            pass


def is_fifo() -> bool:
    """Whether the calling thread runs under SCHED_FIFO."""
    if not hasattr(os, "sched_getscheduler"):
        return False
    return os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0) == os.SCHED_FIFO


@contextlib.contextmanager
def raised(what: str, priority: int, inherit: bool = True):
    """The calling thread at SCHED_FIFO `priority` for a block (if granted), given back its own after."""
    saved = current()
    try_fifo(what, priority, inherit)
    try:
        yield
    finally:
        restore(saved)
