"""A private JACK server on the dummy driver, for tests and benchmarks: the real MIDI and audio server
on a machine without a sound card. Each server has its own name, so parallel sessions never meet."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time

from realtime.childproc import clear_stale_jack_registry, die_with_parent


class JackServer:
    """`jackd -n NAME -d dummy -r RATE -p PERIOD`, started and waited for; clients find it through
    $JACK_DEFAULT_SERVER, which `environ()` sets (with autostart off, so a dead server stays dead)."""

    def __init__(self, period: int = 64, rate: int = 48000, prefix: str = "rt") -> None:
        self.period, self.rate = period, rate
        self.name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> str | None:
        """None when jackd can run here, else why not (for pytest.skip)."""
        missing = [tool for tool in ("jackd", "jack_wait") if shutil.which(tool) is None]
        return f"{', '.join(missing)} not installed (Debian package jackd2)" if missing else None

    def start(self, timeout_s: float = 10.0, attempts: int = 3) -> JackServer:
        """Start and wait for the server; servers starting at the same moment elsewhere on the machine
        (other test sessions) sometimes make one fail at once, so a quick failure is tried again."""
        for attempt in range(attempts):
            try:
                return self._start_once(timeout_s)
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                clear_stale_jack_registry()  # "Too many servers already active" with none running
                time.sleep(0.5 + attempt)
        return self

    def _start_once(self, timeout_s: float) -> JackServer:
        self._process = subprocess.Popen(
            ["jackd", "-n", self.name, "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent)  # a crashed test run must not leave its server behind
        ready = subprocess.run(["jack_wait", "-s", self.name, "-w", "-t", str(int(timeout_s))],
                               capture_output=True, text=True)
        if ready.returncode != 0 or self._process.poll() is not None:
            self.stop()
            raise RuntimeError(f"jackd {self.name} did not start: {ready.stdout.strip()} {ready.stderr.strip()}")
        return self

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def environ(self) -> dict[str, str]:
        return {"JACK_DEFAULT_SERVER": self.name, "JACK_NO_START_SERVER": "1"}

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        time.sleep(0.05)  # let clients see the shutdown before anything starts a new server of this name

    def restart(self) -> JackServer:
        """Stop and start again under the same name: for tests of a server that dies and comes back."""
        self.stop()
        return self.start()

    def __enter__(self) -> JackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
