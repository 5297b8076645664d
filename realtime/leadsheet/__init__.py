"""Lead sheets: a chord progression read from text, Roman numerals or a MIDI file, and what plays over it.

parse.py reads the text (chord symbols, Roman numerals in a key, bars), midichords.py a MIDI file;
both give a `Progression` (progression.py). comp.py plans the bass and chords of each bar from
realtime/engine/comping.py's patterns and voicings; melody.py has the LSTM sing over the chords;
render.py writes all three to a MIDI file (`realtime leadsheet`), judge.py measures them; live.py plans
them bar by bar for `mode = "leadsheet"` (realtime/engine/leadsheet.py).
"""
