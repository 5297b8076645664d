"""Times Notochord per event inside its own virtual environment; driven over stdin/stdout by notochord_env.py.

Standalone on purpose: it runs with the Notochord venv's interpreter, where this package is not
installed. Protocol, one JSON object per line: it answers {"ready": ...} once built, then each
"run N" with {"ns": [...]} (N events, each `feed` of one scripted MIDI event then `query` for the
next one, timed with perf_counter_ns), and exits on "quit" or end of input.

`query` is called with the instrument fixed (`next_inst`, the player's piano), as the engine's
answer is on a fixed channel; `--free-instrument` lets it choose among all 320 instead. `--int8`
runs torch's dynamic int8 quantization of the GRU and every linear layer first. The ready line
reports parameters and the multiply-adds of one event, counted by hooks on the layers that do them.

    python _notochord_worker.py --threads 1 --seed 0 [--int8] [--free-instrument]
"""

import argparse
import gc
import json
import sys
import time

# the same G major figure the engine hears, as MIDI note-on / note-off events (seconds between events)
MELODY = [67, 71, 74, 72, 71, 69, 67, 66, 67, 62, 64, 66]
ON_S, OFF_S = 0.05, 0.2
PIANO = 1  # General MIDI instrument 1


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


def quantize_int8(model):
    """torch's dynamic int8 quantization of every GRU and linear layer; the model's own calls unchanged."""
    import warnings

    import torch
    from torch import nn
    from torch.ao.quantization import quantize_dynamic

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch.ao's notice; the call still works
    warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")

    class TupleState(nn.Module):
        """Notochord's GRU takes and returns its state as a 1-tuple (its rnn_shim); a quantized GRU does not."""

        def __init__(self, gru, like):
            super().__init__()
            self.gru = gru
            for name in ("input_size", "hidden_size", "num_layers", "batch_first"):
                setattr(self, name, getattr(like, name))

        def forward(self, x, states=(None,)):
            out, h = self.gru(x, *states)
            return out, (h,)

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.GRU):
                plain = nn.GRU(child.input_size, child.hidden_size, child.num_layers, bias=child.bias,
                               batch_first=child.batch_first)
                plain.load_state_dict(child.state_dict())
                quantized = quantize_dynamic(nn.Sequential(plain), {nn.GRU}, dtype=torch.qint8)[0]
                setattr(parent, name, quantized if type(child) is nn.GRU else TupleState(quantized, child))
    quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)  # a copy would trip on cached state
    model.device = lambda: torch.device("cpu")  # Notochord reads it off a linear layer's weight, now packed
    return model


class MultiplyAdds:
    """Counts the multiply-adds of linear and recurrent layers while installed.

    Linear layers through forward hooks; recurrent ones by wrapping their `forward`, since
    Notochord's GenericRNN calls `self.rnn.forward(...)` directly and hooks would never fire.
    """

    def __init__(self, model):
        from torch import nn

        self.total = 0
        self.handles = []
        self.wrapped = []
        for module in model.modules():
            if isinstance(module, nn.Linear):
                self.handles.append(module.register_forward_hook(self._linear))
            elif isinstance(module, nn.RNNBase):
                self._wrap(module)

    def _linear(self, module, inputs, output):
        x = inputs[0]
        self.total += x.numel() // module.in_features * module.in_features * module.out_features

    def _wrap(self, module) -> None:
        plain = module.forward

        def counted(x, *rest, **kw):
            steps = x.numel() // module.input_size  # batch x time
            gates = {"GRU": 3, "LSTM": 4}.get(module.mode, 1)
            size = module.input_size
            for _ in range(module.num_layers):
                self.total += steps * gates * module.hidden_size * (size + module.hidden_size)
                size = module.hidden_size
            return plain(x, *rest, **kw)

        module.forward = counted
        self.wrapped.append(module)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        for module in self.wrapped:
            del module.forward


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-up", type=int, default=50)
    parser.add_argument("--int8", action="store_true", help="torch dynamic int8 quantization of GRU and linear layers")
    parser.add_argument("--free-instrument", action="store_true", help="let query choose the instrument")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from notochord import Notochord

    model = Notochord().eval()  # the default architecture; weights are torch's random initialisation
    parameters = sum(p.numel() for p in model.parameters())
    rnn = getattr(model, "rnn", None)
    rnn_info = {"kind": getattr(rnn, "kind", None), "hidden": getattr(rnn, "hidden_size", None),
                "layers": getattr(rnn, "num_layers", None)}
    rnn_parameters = sum(p.numel() for p in rnn.parameters()) if rnn is not None else None
    model.reset()
    player = events()
    query = {} if args.free_instrument else {"next_inst": PIANO}

    def run(n: int) -> list[int]:
        out = []
        clock = time.perf_counter_ns
        for _ in range(n):
            pitch, dt, velocity = next(player)
            t0 = clock()
            model.feed(PIANO, pitch, dt, velocity)
            model.query(**query)
            out.append(clock() - t0)
        return out

    # counted on the fp32 model, before any quantization: int8 changes the arithmetic, not the count
    counter, counted = MultiplyAdds(model), 24
    run(counted)
    counter.remove()
    multiply_adds = counter.total // counted
    if args.int8:
        model = quantize_int8(model)
        model.reset()
    run(args.warm_up)
    gc.collect()
    gc.freeze()
    print(json.dumps({
        "ready": True,
        "parameters": parameters,
        "rnn_parameters": rnn_parameters,
        "rnn": rnn_info,
        "multiply_adds_per_event": multiply_adds,
        "precision": "int8 (torch dynamic quantization: GRU and linear layers)" if args.int8 else "fp32",
        "query": "query(next_inst=1)" if query else "query() (instrument sampled)",
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
