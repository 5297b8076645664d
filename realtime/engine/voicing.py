"""Voice leading for the harmonize mode: which pitches harmonize a melody note, moving as little as can be.

The harmony is a set of pitch classes: the tones of the chord heard (root first, then the third), or
the key's triad on the melody note's degree (every other scale note from it). A melody note outside
the scale gets the key's triads that hold no tone a semitone from it, and the one the voices reach
most smoothly wins. `choose_voices` tries every set of `count` pitches of those classes on one side
of the melody (within an octave and a fifth of it, inside the register) and keeps the cheapest:

- motion: each voice from its previous pitch (voices are ordered from the melody outwards, so they
  never cross each other or the melody), or, with no previous voices, close to the melody;
- a voice doubling the melody's pitch class, two voices on one pitch class, the chord's third or
  root missing from melody + voices, a minor second or ninth against the melody, and gaps of more
  than an octave between neighbours all cost extra.

A handful of candidates per voice: tens of sets per note, tens of microseconds in plain Python.
"""

from __future__ import annotations

from itertools import combinations

from ..listen.chords import QUALITIES

SPAN = 19  # semitones: voices lie within an octave and a fifth of the melody
DOUBLED_MELODY, DOUBLED_VOICES, NO_THIRD, NO_ROOT, CLASH = 12.0, 3.0, 3.0, 2.0, 2.0
CLOSENESS = 0.1  # per semitone from the melody: among equal motions, the closer voicing


def chord_tones(root: int, quality: str) -> tuple[int, ...]:
    """A chord's pitch classes, root first, then its third (or fourth), fifth, seventh."""
    return tuple((root + interval) % 12 for interval in QUALITIES[quality][0])


def scale_of(tonic: int, steps: tuple[int, ...]) -> tuple[int, ...]:
    """A scale's pitch classes in ascending order from C (where it starts does not matter to its triads)."""
    return tuple(sorted({(tonic + step) % 12 for step in steps}))


def key_triads(pitch_class: int, scale: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The triad on the melody's degree; for a note outside the scale, every triad without a semitone against it."""
    size = len(scale)
    triads = [(scale[i], scale[(i + 2) % size], scale[(i + 4) % size]) for i in range(size)]
    if pitch_class in scale:
        return [triads[scale.index(pitch_class)]]
    clear = [t for t in triads if all((pc - pitch_class) % 12 not in (1, 11) for pc in t)]
    return clear or triads


def _cost(melody: int, voices: tuple[int, ...], previous: tuple[int, ...], tones: tuple[int, ...]) -> float:
    cost = 0.0
    for i, pitch in enumerate(voices):
        distance = abs(pitch - melody)
        cost += (abs(pitch - previous[i]) if i < len(previous) else distance) + CLOSENESS * distance
        if distance in (1, 13):
            cost += CLASH
    classes = [pitch % 12 for pitch in voices]
    cost += DOUBLED_VOICES * (len(classes) - len(set(classes)))
    if melody % 12 in classes:
        cost += DOUBLED_MELODY
    sounding = set(classes) | {melody % 12}
    if len(tones) > 1 and tones[1] not in sounding:
        cost += NO_THIRD
    if tones[0] not in sounding:
        cost += NO_ROOT
    neighbour = melody
    for pitch in voices:
        gap = abs(pitch - neighbour)
        if gap > 12:
            cost += gap - 12
        neighbour = pitch
    return cost


def choose_voices(melody: int, tone_sets: list[tuple[int, ...]], previous: tuple[int, ...], count: int,
                  above: bool, lowest: int, highest: int) -> tuple[int, ...]:
    """`count` pitches (fewer if the register has no room), ordered from the melody outwards."""
    step = 1 if above else -1
    best: tuple[int, ...] = ()
    best_cost = float("inf")
    for tones in tone_sets:
        classes = set(tones)
        candidates = [p for p in range(melody + step, melody + step * (SPAN + 1), step)
                      if lowest <= p <= highest and p % 12 in classes and p != melody]
        for voices in combinations(candidates, min(count, len(candidates))):
            cost = _cost(melody, voices, previous, tones)
            if cost < best_cost:
                best, best_cost = voices, cost
    return best
