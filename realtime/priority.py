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
rest of the machine a share if one of them ever spins.
"""

from __future__ import annotations

import os

OUTPUT_PRIORITY = 4  # the scheduler's output thread (it spins the last fraction of a ms)
ENGINE_PRIORITY = 3  # the engine loop and the OSC ring reader
INTAKE_PRIORITY = 2


def try_fifo(what: str, priority: int = ENGINE_PRIORITY) -> str | None:
    """SCHED_FIFO for the calling thread (threads it starts inherit it); None if granted, else why not."""
    if not hasattr(os, "sched_setscheduler"):
        return f"{what} runs without real-time priority (not available on this platform)"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return None
    except (PermissionError, OSError) as err:
        return f"{what} runs without SCHED_FIFO ({err.strerror or err}); timing may jitter under load"


def is_fifo() -> bool:
    """Whether the calling thread runs under SCHED_FIFO."""
    return hasattr(os, "sched_getscheduler") and os.sched_getscheduler(0) == os.SCHED_FIFO
