"""Engines started by tests and benchmarks stop on SIGINT even when the caller was started with it ignored.

A shell starts a background job with SIGINT ignored and Python keeps that for everything it starts; a suite
started so (the fresh-clone run of bc47879) failed 19 tests: each `realtime run` ignored the Ctrl-C that
should have stopped it and was killed 20 s later.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap


PRINT_SIGINT = "import signal; print(signal.getsignal(signal.SIGINT))"


def _as_a_background_job(code: str) -> str:
    """Run `code` in a Python started with SIGINT ignored, as a shell's background job is; its output."""
    ignore = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          preexec_fn=ignore, check=True).stdout.strip()


def test_a_background_job_starts_with_sigint_ignored():
    """What the fix is for: without it a child of such a job ignores Ctrl-C too."""
    assert _as_a_background_job(PRINT_SIGINT) == str(signal.SIG_IGN)


def test_interruptible_lets_sigint_stop_the_process_and_its_children():
    code = textwrap.dedent(f"""
        import subprocess, sys
        from realtime.childproc import interruptible
        interruptible()
        print(subprocess.run([sys.executable, "-c", {PRINT_SIGINT!r}], capture_output=True, text=True).stdout)
    """)
    assert _as_a_background_job(code) == "<built-in function default_int_handler>"


def test_an_engine_child_stops_on_sigint_whatever_its_parent_ignores():
    code = textwrap.dedent(f"""
        import subprocess, sys
        from realtime.childproc import engine_child
        print(subprocess.run([sys.executable, "-c", {PRINT_SIGINT!r}], capture_output=True, text=True,
                             preexec_fn=engine_child).stdout)
    """)
    assert _as_a_background_job(code) == "<built-in function default_int_handler>"


def test_this_suite_stops_what_it_starts_with_sigint():
    """tests/conftest.py calls interruptible(): however the suite was started, SIGINT is not ignored here."""
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
