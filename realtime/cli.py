"""`realtime` command line: each subcommand parses its flags and calls one function elsewhere."""

from __future__ import annotations

import argparse
import sys

from .errors import RealtimeError
from .io.ports import MIDI_BACKENDS
from .settings import DUET_MODEL


# default None on the command line: a flag not given leaves the config's own default
TRAIN_FLAGS = ("midi_dir", "limit", "out_dir", "name", "checkpoint_dir", "hidden", "layers", "epochs", "batch",
               "window", "seed", "threads")


def train_config(args: argparse.Namespace):
    """`realtime train` flags -> TrainConfig, ConditionedConfig with --controls, StageConfig with --stage."""
    try:
        if args.stage:
            from .training.stage import StageConfig as config
        elif args.controls:
            from .training.conditioned import ConditionedConfig as config
        else:
            from .training.train import TrainConfig as config
    except ImportError as err:
        raise RealtimeError(f"training needs the train extra ({err.name} is missing): pip install -e '.[train]'") from None
    given = {name: getattr(args, name) for name in TRAIN_FLAGS if getattr(args, name) is not None}
    if args.corpus is not None:
        given["corpus"] = [c for c in args.corpus.split(",") if c]
    if args.key_shares is not None:
        if not args.stage:
            raise RealtimeError("--key-shares is a stage model's choice: give --stage too")
        given["key_shares"] = args.key_shares
    if args.measured is not None:
        if not args.stage:
            raise RealtimeError("--measured is a stage model's choice: give --stage too")
        given["measured"] = args.measured
    if args.drop_measured is not None:
        if not args.stage:
            raise RealtimeError("--drop-measured is a stage model's choice: give --stage too")
        if not 0.0 <= args.drop_measured <= 1.0:
            raise RealtimeError(f"--drop-measured {args.drop_measured}: a probability, 0 to 1")
        given["drop_measured"] = args.drop_measured
    if args.max_minutes is not None:
        if not (args.stage or args.controls):
            raise RealtimeError("--max-minutes applies to --controls and --stage training")
        given["max_minutes"] = args.max_minutes
    return config(**given, progress=not args.no_progress)


def _train(args: argparse.Namespace) -> None:
    cfg = train_config(args)
    if args.stage:
        from .training.stage import train_stage

        train_stage(cfg, backend=args.backend)
    elif args.controls:
        from .training.conditioned import train_conditioned

        train_conditioned(cfg, backend=args.backend)
    else:
        from .training.train import train

        train(cfg, backend=args.backend)


def _game_client(args: argparse.Namespace) -> None:
    from .gameclient import run_client

    run_client(args.host, args.port, args.seconds_per_scene, start=not args.no_start, stop=args.stop)


def _continue(args: argparse.Namespace) -> None:
    from .offline import continue_file

    summary = continue_file(args.prompt, args.out, model=args.model, notes=args.notes, seed=args.seed,
                            temperature=args.temperature, top_p=args.top_p, key=args.key,
                            max_polyphony=args.max_polyphony, rhythm=args.rhythm, mood=args.mood, moods=args.moods,
                            style=args.style, style_guidance=args.style_guidance)
    print(summary)


def _leadsheet(args: argparse.Namespace) -> None:
    from .leadsheet.render import leadsheet_file
    from .moods import choose, load_moods

    mood = choose(load_moods(args.moods), args.mood, "--mood") if args.mood is not None else None
    print(leadsheet_file(args.progression, args.out, bars=args.bars, tempo_bpm=args.tempo, seed=args.seed,
                         key=args.key, melody=args.melody, model=args.model, bass_pattern=args.bass_pattern,
                         chord_pattern=args.chord_pattern, mood=mood, style=args.style,
                         style_guidance=args.style_guidance))


def _demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    run_demo(out_dir=args.out_dir, model=args.model, seed=args.seed, play=not args.no_play, offline=args.offline)


def _run(args: argparse.Namespace) -> None:
    from .app import Overrides, apply_overrides, run_patch
    from .patch import load_patch

    overrides = Overrides(args.midi_backend, args.osc_port, args.no_midi, args.no_osc, args.mood)
    patch = apply_overrides(load_patch(args.patch), overrides)
    run_patch(patch, duration_s=args.seconds, reload=lambda: apply_overrides(load_patch(args.patch), overrides),
              record=args.record, view=args.view)


def _replay(args: argparse.Namespace) -> None:
    from .replay import replay_session

    r = replay_session(args.session, args.out)
    verdict = "the same notes as live" if r["same_pitches"] else "DIFFERENT notes from the live session"
    print(f"replayed {r['replayed_notes']} engine notes ({r['live_notes']} live) into {r['out']}: {verdict}; "
          f"onsets within {r['max_onset_diff_planned_ms']:.3f} ms of the live schedule, "
          f"{r['max_onset_diff_played_ms']:.3f} ms of the live sends")
    if not r["same_pitches"]:
        raise SystemExit(1)


def _ports(args: argparse.Namespace) -> None:
    from .io.midi import compiled_backends, list_ports

    for backend in [args.midi_backend] if args.midi_backend else compiled_backends():
        try:
            ports = list_ports("jack" if backend == "jack-rtmidi" else backend)
        except RealtimeError as err:
            print(f"{backend}: unavailable ({err})")
            continue
        print(f"{backend}:")
        for kind in ("inputs", "outputs"):
            names = ports[kind]
            print(f"  {kind}: " + (", ".join(repr(n) for n in names) if names else "none"))


def _calibrate(args: argparse.Namespace) -> None:
    from .calibrate import run

    run(args.patch, trials=args.trials, write=args.write, output=args.output, input_port=args.input)


def _bench(args: argparse.Namespace) -> None:
    from .bench.runner import run_all

    run_all(out_dir=args.out_dir, quick=args.quick, only=args.only, skip=args.skip)


def build_parser() -> argparse.ArgumentParser:
    from .stagesettings import BASS_PATTERNS, CHORD_PATTERNS

    parser = argparse.ArgumentParser(prog="realtime", description="A real-time interactive music engine.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="play the bundled phrase into the engine and render its answer (no hardware)")
    p.add_argument("--out-dir", default="out")
    p.add_argument("--model", default=DUET_MODEL)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-play", action="store_true", help="do not try the audio device")
    p.add_argument("--offline", action="store_true",
                   help="run the same engine loop on a fake clock: the same files in a fraction of the time, not played")
    p.set_defaults(func=_demo)

    p = sub.add_parser("run", help="run a patch live: MIDI/OSC in, answers out, one-line status; Ctrl-C stops")
    p.add_argument("patch", help="a patch file, e.g. patches/duet.toml")
    p.add_argument("--midi-backend", choices=MIDI_BACKENDS, default=None)
    p.add_argument("--osc-port", type=int, default=None)
    p.add_argument("--no-midi", action="store_true", help="OSC only")
    p.add_argument("--no-osc", action="store_true", help="MIDI only")
    p.add_argument("--seconds", type=float, default=None, help="stop by itself after this long")
    p.add_argument("--record", metavar="DIR", default=None,
                   help="write DIR/session.mid and DIR/session.events (for `realtime replay`)")
    p.add_argument("--view", action="store_true", help="the cockpit: a terminal view; q quits with all notes off")
    p.add_argument("--mood", default=None, help="the duet's mood, over the patch's [engine] mood (a name in its table)")
    p.set_defaults(func=_run)

    p = sub.add_parser("replay", help="render a recorded session's engine notes again, offline and exactly")
    p.add_argument("session", help="a folder written by `realtime run --record`")
    p.add_argument("--out", required=True, help="output .mid")
    p.set_defaults(func=_replay)

    p = sub.add_parser("ports", help="list MIDI inputs and outputs per backend")
    p.add_argument("--midi-backend", choices=MIDI_BACKENDS, default=None)
    p.set_defaults(func=_ports)

    p = sub.add_parser("calibrate", help="measure a MIDI output's latency through a loopback (out -> device -> in)")
    p.add_argument("patch", help="the patch whose [midi] output and input the loopback joins")
    p.add_argument("--output", default=None, help="MIDI output port (default: the patch's)")
    p.add_argument("--input", default=None, help="MIDI input port the device answers on (default: the patch's)")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--write", action="store_true", help="write the figure into the patch as [midi] latency_ms")
    p.set_defaults(func=_calibrate)

    p = sub.add_parser("continue", help="continue a MIDI file offline: the file played into the engine on a fake clock")
    p.add_argument("--prompt", required=True, help="input .mid")
    p.add_argument("--out", required=True, help="output .mid (prompt followed by the continuation)")
    p.add_argument("--model", default=DUET_MODEL)
    p.add_argument("--notes", type=int, default=32, help="how many notes to add")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--key", default=None, help='constrain pitches to a key, e.g. "C major", "A minor", "D dorian"')
    p.add_argument("--max-polyphony", type=int, default=None)
    p.add_argument("--rhythm", default=None, metavar="RHYTHM",
                   help='the answer\'s onsets and durations, looped: a .mid file, a sixteenth grid like "x.x.xx.x" '
                        'or durations in beats like "1 0.5 0.5 1"; the pitches stay the model\'s')
    p.add_argument("--mood", default=None, help="a mood of the table (calm, tense, cheerful, romantic, sad, ...)")
    p.add_argument("--moods", default=None, metavar="TABLE", help="the mood table (default: patches/moods.toml)")
    p.add_argument("--style", default=None, help="a style of a stage model's card (chorale, irish, fiddle, folk)")
    p.add_argument("--style-guidance", type=float, default=None,
                   help="push the style this much beyond what the model alone makes of it (0-8; default 0; 2: audible)")
    p.set_defaults(func=_continue)

    p = sub.add_parser("leadsheet", help="bass, chords and a melody over a chord progression, as a MIDI file")
    p.add_argument("progression", help='chords as text ("| C | Am | F | G7 |", "ii7 V7 Imaj7 in Bb") or a .mid file')
    p.add_argument("--out", required=True, help="output .mid: tracks bass, chords and melody (channels 2, 3, 4)")
    p.add_argument("--bars", type=int, default=None, help="bars to play, the progression looping (default: whole "
                   "passes, at least 8 bars)")
    p.add_argument("--tempo", type=float, default=None, help="BPM (default: the MIDI file's, else 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--key", default=None, help='the key, e.g. "Bb", "c" or "F# minor" (default: the text\'s '
                   '"in KEY", else estimated from the chords)')
    p.add_argument("--melody", action=argparse.BooleanOptionalAction, default=True, help="a melody track (the LSTM)")
    p.add_argument("--model", default="stage-lstm.int8")
    p.add_argument("--bass-pattern", choices=BASS_PATTERNS, default="quarter")
    p.add_argument("--chord-pattern", choices=CHORD_PATTERNS, default="half")
    p.add_argument("--mood", default=None, help="a mood of the table (patches/moods.toml): its tempo (unless --tempo), "
                   "loudness and melody register")
    p.add_argument("--moods", default=None, help="your own mood table (default: the shipped patches/moods.toml)")
    p.add_argument("--style", default=None, help="the melody's style: one of a stage model's card (chorale, irish, "
                   "fiddle, folk)")
    p.add_argument("--style-guidance", type=float, default=None,
                   help="push the melody's style this much beyond what the model alone makes of it (0-8; default 0)")
    p.set_defaults(func=_leadsheet)

    p = sub.add_parser("bench", help="run every benchmark in benchmarks/: results.json, plots and summary.md")
    p.add_argument("--quick", action="store_true", help="a short run (under two minutes once caches are built)")
    p.add_argument("--out-dir", default="out/bench")
    p.add_argument("--only", default=None, help="comma-separated benchmark names, e.g. notochord,scaling")
    p.add_argument("--skip", default=None, help="comma-separated benchmark names to leave out")
    p.set_defaults(func=_bench)

    p = sub.add_parser("train", help="train an LSTM and the Markov baseline, export ONNX (needs the train extra)")
    p.description = ("A flag left out keeps the training config's own default (TrainConfig, or ConditionedConfig "
                     "with --controls, StageConfig with --stage, whose name, size, epochs and threads differ); a flag given "
                     "always wins.")
    p.add_argument("--corpus", default=None,
                   help="comma-separated music21 collections: chorales, essenFolksong, oneills1850, ryansMammoth")
    p.add_argument("--midi-dir", default=None, help="also train on every .mid under this folder")
    p.add_argument("--limit", type=int, default=None, help="pieces per collection (quick runs)")
    p.add_argument("--out-dir", default=None)
    p.add_argument("--name", default=None)
    p.add_argument("--checkpoint-dir", default=None, help="resumable checkpoints live here")
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch", type=int, default=None, help="windows per batch (per process under torchrun)")
    p.add_argument("--window", type=int, default=None, help="notes per training window")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--controls", action="store_true",
                   help="train a conditioned model for game mode (density, register, dynamics, key)")
    p.add_argument("--stage", action="store_true",
                   help="train the stage model: the controls plus harmony, role and style (every voice of the chorales, "
                        "the melody collections)")
    p.add_argument("--key-shares", choices=("window", "profile"), default=None,
                   help="with --stage: the pitch-class controls as the line's key profile (profile, the default: the "
                        "key, not the notes) or the shares of the notes around each note (window; the note included)")
    p.add_argument("--measured", choices=("around", "before"), default=None,
                   help="with --stage: density, register, dynamics (and a profile's key) measured around each note "
                        "(around, the default; the note included) or from the notes before it (before: what a "
                        "listener knows, so the held-out NLL is a fair one)")
    p.add_argument("--drop-measured", type=float, default=None,
                   help="with --stage: per line and epoch, hear the measured controls as not known (their defaults, "
                        "flagged) with this probability (default 0.25, the shipped model's), so it also predicts from the notes alone")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="with --controls or --stage: stop after the epoch that passes this (the best epoch is exported)")
    p.add_argument("--backend", choices=("gloo", "nccl"), default=None,
                   help="under torchrun: the process group's backend (default nccl with CUDA, else gloo)")
    p.set_defaults(func=_train)

    p = sub.add_parser("game-client", help="a scripted game: calm, tense, combat, victory over OSC")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--seconds-per-scene", type=float, default=12.0)
    p.add_argument("--no-start", action="store_true", help="do not send /transport/start first")
    p.add_argument("--stop", action="store_true", help="send /transport/stop at the end")
    p.set_defaults(func=_game_client)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except RealtimeError as err:
        if args.debug:
            raise
        print(f"realtime: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
