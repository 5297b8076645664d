"""`realtime game-client`: a scripted "game" that walks calm -> tense -> combat -> victory over OSC.

What a game engine would send: parameters every frame-ish (intensity ramps, danger rises and falls),
a state per scene, events (hits, a pickup) at moments the story picks, tempo and transport, each a
UDP datagram built by realtime's OSC encoder (realtime/io/osccodec.py: floats as f, names as s).
Point it at `realtime run patches/game.toml` (or anything speaking the same API).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from .io.osccodec import encode_message


@dataclass(frozen=True)
class Scene:
    state: str
    intensity: tuple[float, float]  # from, to over the scene
    danger: tuple[float, float]
    events: tuple[tuple[float, str], ...] = ()  # (fraction of the scene, event name)


SCENES = (
    Scene("calm", (0.1, 0.25), (0.0, 0.0), ((0.6, "pickup"),)),
    Scene("tense", (0.3, 0.6), (0.2, 0.6)),
    Scene("combat", (0.8, 1.0), (0.7, 1.0), ((0.25, "hit"), (0.5, "hit"), (0.8, "hit"))),
    Scene("victory", (0.6, 0.3), (0.2, 0.0), ((0.1, "pickup"),)),
)


def run_client(host: str = "127.0.0.1", port: int = 9000, seconds_per_scene: float = 12.0, rate_hz: float = 20.0,
               start: bool = True, stop: bool = False, printer=print) -> list[tuple[float, str, tuple]]:
    """Send the whole script; returns what was sent as (seconds since start, address, arguments)."""
    target = (socket.gethostbyname(host), port)
    log: list[tuple[float, str, tuple]] = []
    t0 = time.monotonic()

    def send(address: str, *args) -> None:
        sock.sendto(encode_message(address, *args), target)
        log.append((time.monotonic() - t0, address, args))

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        if start:
            send("/transport/start")
        for scene in SCENES:
            printer(f"game-client: {scene.state} (intensity {scene.intensity[0]:.2f} -> {scene.intensity[1]:.2f})")
            send("/game/state", scene.state)
            pending = list(scene.events)
            steps = max(1, int(seconds_per_scene * rate_hz))
            for i in range(steps):
                x = i / max(1, steps - 1)
                send("/game/param", "intensity", scene.intensity[0] + (scene.intensity[1] - scene.intensity[0]) * x)
                send("/game/param", "danger", scene.danger[0] + (scene.danger[1] - scene.danger[0]) * x)
                while pending and pending[0][0] <= x:
                    printer(f"game-client:   event {pending[0][1]}")
                    send("/game/event", pending.pop(0)[1])
                time.sleep(1.0 / rate_hz)
        if stop:
            send("/transport/stop")
    return log
