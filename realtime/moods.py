"""Moods: named presets of tempo, mode, density, register, dynamics and temperature, in a table users edit.

A mood is a handful of musical choices a word stands for ("calm": slow, major, sparse, middle register,
soft). The table is TOML, one `[NAME]` per mood (patches/moods.toml ships calm, tense, cheerful,
romantic, sad, mysterious and triumphant); a patch names its own with `[engine] moods = "FILE"`. The
duet and `realtime continue` play a mood by steering the answer (engine/answershape.py): its tempo
and velocity directly, its mode through the key mask, its density and register as soft preferences
on the model's onset and pitch choices. Every value is checked against the shared ranges
(settings.RANGES); an unknown mood gets one line naming it and the known ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import PatchError
from .model.sampling import SCALES
from .settings import RANGES

SHIPPED = Path(__file__).resolve().parents[1] / "patches" / "moods.toml"
STEERED = ("tempo_bpm", "density", "register", "dynamics", "temperature")  # the numbers a mood sets


@dataclass(frozen=True)
class Mood:
    name: str
    tempo_bpm: float = RANGES["tempo_bpm"].default
    mode: str = "major"  # a scale of model/sampling.py SCALES, on the key's tonic
    density: float = RANGES["density"].default  # notes per beat
    register: float = RANGES["register"].default  # mean MIDI pitch
    dynamics: float = RANGES["dynamics"].default  # mean MIDI velocity
    temperature: float | None = None  # None: the patch's (or the model card's)

    @property
    def minor(self) -> bool:
        """Whether the mode has a minor third (what the benchmark's major/minor share checks)."""
        return 3 in SCALES[self.mode]


def load_moods(path: str | Path | None = None) -> dict[str, Mood]:
    """The moods of a table (default: the shipped one), in file order; PatchError names the file and key."""
    from .patchcheck import named_tables, read_toml  # the patch's own checks, imported where a table is read

    path = Path(path) if path is not None else SHIPPED
    moods = named_tables(str(path), "moods", Mood, read_toml(path, "mood table"))
    for mood in moods:
        where = f"{path}: [{mood.name}]"
        if mood.mode not in SCALES:
            raise PatchError(f"{where} mode must be one of {', '.join(SCALES)}, got {mood.mode!r}")
        for key in STEERED:
            value = getattr(mood, key)
            if value is not None and value not in RANGES[key]:
                raise PatchError(f"{where} {key} must lie in {RANGES[key].span()}, got {value}")
        if mood.density <= 0:
            raise PatchError(f"{where} density must be more than 0 notes per beat, got {mood.density}")
    if not moods:
        raise PatchError(f"{path}: no moods in the table")
    return {mood.name: mood for mood in moods}


def choose(moods: dict[str, Mood], name: str, where: str = "mood") -> Mood:
    """The named mood, or one line naming it and every mood the table knows."""
    if name not in moods:
        raise PatchError(f"{where}: unknown mood {name!r}; known: {', '.join(moods)}")
    return moods[name]
