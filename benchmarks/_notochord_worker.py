"""Times Notochord per event inside its own virtual environment; driven over stdin/stdout by notochord_env.py.

Standalone on purpose: it runs with the Notochord venv's interpreter, where this package is not
installed. Protocol, one JSON object per line: it answers {"ready": ...} once built, then each
"run N" with {"ns": [...]} (N events, each `feed` of one scripted MIDI event then `query` for the
next one, timed with perf_counter_ns), and exits on "quit" or end of input.

    python _notochord_worker.py --threads 1 --seed 0
"""

import argparse
import gc
import json
import sys
import time

# the same G major figure the engine hears, as MIDI note-on / note-off events (seconds between events)
MELODY = [67, 71, 74, 72, 71, 69, 67, 66, 67, 62, 64, 66]
ON_S, OFF_S = 0.05, 0.2


def events():
    """An endless player's line: note-on, then its note-off, for each pitch of MELODY in turn."""
    i = 0
    while True:
        pitch = MELODY[i % len(MELODY)]
        yield pitch, ON_S, 80.0
        yield pitch, OFF_S, 0.0
        i += 1


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-up", type=int, default=50)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from notochord import Notochord

    model = Notochord().eval()  # the default architecture; weights are torch's random initialisation
    model.reset()
    player = events()
    piano = 1  # General MIDI instrument 1

    def run(n: int) -> list[int]:
        out = []
        clock = time.perf_counter_ns
        for _ in range(n):
            pitch, dt, velocity = next(player)
            t0 = clock()
            model.feed(piano, pitch, dt, velocity)
            model.query()
            out.append(clock() - t0)
        return out

    run(args.warm_up)
    gc.collect()
    gc.freeze()
    rnn = getattr(model, "rnn", None)
    print(json.dumps({
        "ready": True,
        "parameters": sum(p.numel() for p in model.parameters()),
        "rnn_parameters": sum(p.numel() for p in rnn.parameters()) if rnn is not None else None,
        "rnn": {"kind": getattr(rnn, "kind", None), "hidden": getattr(rnn, "hidden_size", None),
                "layers": getattr(rnn, "num_layers", None)},
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "notochord": _version("notochord"), "python": sys.version.split()[0]},
    }), flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            break
        if command[0] == "run":
            print(json.dumps({"ns": run(int(command[1]))}), flush=True)


if __name__ == "__main__":
    main()
