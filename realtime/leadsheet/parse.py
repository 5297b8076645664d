"""Reading a progression written as text: chord symbols or Roman numerals, in bars, optionally in a key.

    | C | Am | F | G7 |          one chord a bar; `|` separates bars
    | Dm7 G7 | Cmaj7 | % |      two chords split a bar (4/4: two beats each); `%` alone repeats the bar
    | C - - G7 |                `-` (or `%`) in a bar holds the chord before it for that slot
    ii7 V7 Imaj7 in Bb           no bars: one chord a bar; numerals need a key (`in c`: C minor)
    | I V/V | V7 | I | in G     `bVII`, `#iv` (accidentals against the major scale), V/V (secondary)

A bar of n slots gives them beats_per_bar // n beats each, the first ones a beat more when it does not
divide (3 in 4/4: 2, 1, 1); more slots than beats is an error. Chord symbols: a root A-G with `#`/`b`,
then "", m, 7, maj7 (M7, Δ), m7, m7b5 (ø), dim (o), dim7 (o7), aug (+), sus4 (sus), and `/E` for the
bass. Numerals: upper case major, lower case minor, with the same suffixes (V7 dominant, ii7 minor
seventh, viio7, iiø7); in a minor key the plain degrees are natural minor's (III, VI, VII on its third,
sixth and seventh) except a lower-case vi and vii, which stand on the raised sixth and seventh.
Every error is one line naming the token (1-based, bar lines not counted) and what is wrong with it.
"""

from __future__ import annotations

import re

from ..errors import LeadSheetError
from ..listen.chords import QUALITIES
from .progression import ACCIDENTALS, Chord, Key, Progression, Span, check_key, estimate_key, note_class

SYMBOL_SUFFIXES = {
    "": "maj", "maj": "maj", "M": "maj", "m": "min", "min": "min", "-": "min",
    "7": "7", "dom7": "7", "maj7": "maj7", "M7": "maj7", "Δ": "maj7", "Δ7": "maj7", "ma7": "maj7",
    "m7": "m7", "min7": "m7", "-7": "m7", "m7b5": "m7b5", "ø": "m7b5", "ø7": "m7b5", "-7b5": "m7b5",
    "min7b5": "m7b5", "dim": "dim", "o": "dim", "°": "dim", "dim7": "dim7", "o7": "dim7", "°7": "dim7",
    "aug": "aug", "+": "aug", "sus4": "sus4", "sus": "sus4",
}
UPPER_SUFFIXES = {"": "maj", "7": "7", "maj7": "maj7", "M7": "maj7", "Δ": "maj7", "Δ7": "maj7", "+": "aug",
                  "aug": "aug", "sus4": "sus4", "sus": "sus4"}
LOWER_SUFFIXES = {"": "min", "7": "m7", "m7": "m7", "o": "dim", "°": "dim", "dim": "dim", "o7": "dim7",
                  "°7": "dim7", "dim7": "dim7", "ø": "m7b5", "ø7": "m7b5", "m7b5": "m7b5"}
NUMERALS = ("vii", "iii", "vi", "iv", "ii", "v", "i")  # longest first
DEGREE = {"i": 0, "ii": 1, "iii": 2, "iv": 3, "v": 4, "vi": 5, "vii": 6}
MAJOR = (0, 2, 4, 5, 7, 9, 11)
NATURAL_MINOR = (0, 2, 3, 5, 7, 8, 10)
_NUMERAL = re.compile(r"^([#b♯♭]?)(" + "|".join(NUMERALS) + r")(.*)$", re.IGNORECASE)
REPEATS = ("%", "-")


class _Token:
    def __init__(self, text: str, number: int) -> None:
        self.text, self.number = text, number

    def fail(self, why: str) -> LeadSheetError:
        return LeadSheetError(f"leadsheet: \"{self.text}\" at token {self.number}: {why}")


def _symbol(token: _Token) -> Chord:
    text = token.text
    main, _, bass_text = text.partition("/")
    if not main or main[0] not in "ABCDEFG":
        raise token.fail(f"unknown chord root \"{main[:1] or text[:1]}\" (chord roots are A-G)")
    length = 1 + (len(main) > 1 and main[1] in ACCIDENTALS)
    root, suffix = note_class(main[:length]), main[length:]
    if suffix not in SYMBOL_SUFFIXES:
        known = ", ".join(sorted({k for k in SYMBOL_SUFFIXES if k and k.isascii()}))
        raise token.fail(f"unknown chord quality \"{suffix}\" (known: {known})")
    bass = None
    if bass_text:
        bass = note_class(bass_text)
        if bass is None:
            raise token.fail(f"unknown bass note \"{bass_text}\" after the slash")
    return Chord(root, SYMBOL_SUFFIXES[suffix], None if bass == root else bass)


def _degree_root(accidental: str, numeral: str, key: Key) -> int:
    """The root of a numeral's degree in a key (see the module docstring for minor)."""
    degree = DEGREE[numeral.lower()]
    if accidental:
        return (key.tonic + MAJOR[degree] + ACCIDENTALS[accidental]) % 12
    if key.mode == "minor" and not (numeral in ("vi", "vii")):
        return (key.tonic + NATURAL_MINOR[degree]) % 12
    return (key.tonic + MAJOR[degree]) % 12


def _numeral(token: _Token, key: Key | None) -> Chord:
    if key is None:
        raise token.fail("a Roman numeral needs a key: add \"in C\" (\"in c\" for C minor) or --key")
    main, _, target = token.text.partition("/")
    if target:  # V/V: the numeral in the key of its target's root, major (or minor for a lower-case target)
        found = _NUMERAL.match(target)
        if found is None or found.group(3) or not (found.group(2).isupper() or found.group(2).islower()):
            raise token.fail(f"\"{target}\" after the slash is not a Roman numeral")
        key = Key(_degree_root(found.group(1), found.group(2), key), "major" if found.group(2).isupper() else "minor")
    found = _NUMERAL.match(main)
    accidental, numeral, suffix = found.groups()
    if not (numeral.isupper() or numeral.islower()):
        raise token.fail(f"\"{numeral}\" mixes cases: upper case is a major chord, lower case a minor one")
    table = UPPER_SUFFIXES if numeral.isupper() else LOWER_SUFFIXES
    if suffix not in table:
        kind = "an upper-case (major)" if numeral.isupper() else "a lower-case (minor)"
        raise token.fail(f"unknown quality \"{suffix}\" for {kind} numeral (known: "
                         f"{', '.join(repr(k) for k in table if k.isascii())})")
    return Chord(_degree_root(accidental, numeral, key), table[suffix])


def _chord(token: _Token, key: Key | None) -> Chord:
    if _NUMERAL.match(token.text.partition("/")[0]) and token.text[0] not in "ABCDEFG":
        return _numeral(token, key)
    return _symbol(token)


def _split_key(text: str, key: str | None) -> tuple[list[str], Key | None]:
    """The words before `in KEY`, and the key (the text's `in`, else the one given, else None)."""
    words = text.replace("|", " | ").split()
    lowered = [w.lower() for w in words]
    if "in" in lowered:
        at = lowered.index("in")
        key_text = " ".join(words[at + 1:])
        if not key_text:
            raise LeadSheetError("leadsheet: \"in\" at the end names no key (write e.g. \"in Bb\" or \"in c\")")
        return words[:at], check_key(key_text, "after \"in\"")
    return words, (check_key(key, "--key") if key else None)


def parse_text(text: str, key: str | None = None, beats_per_bar: int = 4) -> Progression:
    """A progression from its text; `key` (e.g. "Bb", "c minor") when the text has no `in KEY`."""
    words, found_key = _split_key(text, key)
    if not any(w != "|" for w in words):
        raise LeadSheetError(f"leadsheet: {text.strip()!r} holds no chords (write e.g. \"| C | Am | F | G7 |\")")
    tokens, number = [], 0
    for word in words:
        if word == "|":
            tokens.append(None)
        else:
            number += 1
            tokens.append(_Token(word, number))
    if None in tokens:
        bars, current = [], []
        for token in tokens + [None]:
            if token is None:
                if current:
                    bars.append(current)
                current = []
            else:
                current.append(token)
    else:
        bars = [[token] for token in tokens]
    return _progression(bars, found_key, beats_per_bar, text.strip())


def _progression(bars: list[list[_Token]], key: Key | None, beats_per_bar: int, text: str) -> Progression:
    slots: list[tuple[Chord, int]] = []
    previous_bar: list[tuple[Chord, int]] = []
    for bar in bars:
        if len(bar) == 1 and bar[0].text == "%":
            if not previous_bar:
                raise bar[0].fail("nothing before it to repeat")
            slots += previous_bar
            continue
        if len(bar) > beats_per_bar:
            raise bar[beats_per_bar].fail(f"a bar of {len(bar)} chords, more than its {beats_per_bar} beats")
        base, extra = divmod(beats_per_bar, len(bar))
        this_bar = []
        for i, token in enumerate(bar):
            if token.text in REPEATS:
                if not slots and not this_bar:
                    raise token.fail("no chord before it to hold")
                chord = (this_bar or slots)[-1][0]
            else:
                chord = _chord(token, key)
            this_bar.append((chord, base + (i < extra)))
        slots += this_bar
        previous_bar = this_bar
    spans: list[Span] = []
    beat = 0
    for chord, beats in slots:
        if spans and spans[-1].chord == chord:
            spans[-1] = Span(chord, spans[-1].start, spans[-1].beats + beats)
        else:
            spans.append(Span(chord, beat, beats))
        beat += beats
    spans_t = tuple(spans)
    return Progression(spans_t, beat // beats_per_bar, beats_per_bar, key or estimate_key(spans_t), text)


def check_qualities() -> None:
    """Every quality the tables name is one the listener and the voicing know (run by the tests)."""
    for table in (SYMBOL_SUFFIXES, UPPER_SUFFIXES, LOWER_SUFFIXES):
        assert set(table.values()) <= set(QUALITIES)
