"""A private JACK server on the dummy driver, for tests and benchmarks: the real MIDI and audio server
on a machine without a sound card. Each server has its own name, so parallel sessions never meet."""

from __future__ import annotations

import os
import secrets
import shutil
import struct
import subprocess
import time

from realtime.childproc import die_with_parent

REGISTRY = "/dev/shm/jack-shm-registry"
_MAGIC, _SLOTS = 0x4A41434B, 8  # JACK 2's registry: "JACK", and room for 8 servers


def registered_servers(path: str = REGISTRY) -> list[tuple[int, str]]:
    """(pid, name) of each server JACK's shared-memory registry holds, read only: JACK 2's layout, a
    24-byte header (magic, protocol, type, size, header length, entry length), then 8 slots of a pid
    and a "jack-UID:NAME:" prefix. Empty when there is no registry or it is laid out otherwise."""
    try:
        with open(path, "rb") as registry:
            data = registry.read()
    except OSError:
        return []
    if len(data) < 24 or struct.unpack_from("<I", data, 0)[0] != _MAGIC:
        return []
    header = struct.unpack_from("<I", data, 16)[0]
    slot = (header - 24) // _SLOTS
    found = []
    for i in range(_SLOTS):
        at = 24 + i * slot
        pid = struct.unpack_from("<i", data, at)[0]
        prefix = data[at + 4:at + slot].split(b"\0")[0].decode(errors="replace")
        if pid and ":" in prefix:
            found.append((pid, prefix[prefix.index(":") + 1:prefix.rindex(":")]))
    return found


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def stale_servers(path: str = REGISTRY) -> list[str]:
    """Names of registered servers whose process is gone (killed, or its parent crashed)."""
    return [name for pid, name in registered_servers(path) if not _running(pid)]


def reclaim_stale_servers(path: str = REGISTRY) -> list[str]:
    """Free the registry slots of servers that died without leaving ("Too many servers already active"
    once 8 are held). jackd frees a dead server's slot only when a server of the same name starts, so
    one is started and stopped per stale name. The registry file itself is never removed: a process
    with libjack loaded keeps its mapping of it, and after a removal every client that process opened
    failed (JackOpenError 0x21 server_error; rtmidi "JACK server not running?"), which failed every
    in-process JACK test of a CI run from the first removal on. Returns the names reclaimed."""
    reclaimed = []
    for name in stale_servers(path):
        server = JackServer(name=name)
        try:
            server.start(attempts=1)
        except RuntimeError:
            continue
        server.stop()
        reclaimed.append(name)
    return reclaimed


class JackServer:
    """`jackd -n NAME -d dummy -r RATE -p PERIOD`, started and waited for; clients find it through
    $JACK_DEFAULT_SERVER, which `environ()` sets (with autostart off, so a dead server stays dead)."""

    def __init__(self, period: int = 64, rate: int = 48000, prefix: str = "rt", name: str | None = None) -> None:
        self.period, self.rate = period, rate
        self.name = name or f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> str | None:
        """None when jackd can run here, else why not (for pytest.skip)."""
        missing = [tool for tool in ("jackd", "jack_wait") if shutil.which(tool) is None]
        return f"{', '.join(missing)} not installed (Debian package jackd2)" if missing else None

    def start(self, timeout_s: float = 10.0, attempts: int = 3) -> JackServer:
        """Start and wait for the server; servers starting at the same moment elsewhere on the machine
        (other test sessions) sometimes make one fail at once, so a failure is tried again, after the
        slots of dead servers are reclaimed ("Too many servers already active")."""
        for attempt in range(attempts):
            try:
                return self._start_once(timeout_s)
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                reclaim_stale_servers()
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
