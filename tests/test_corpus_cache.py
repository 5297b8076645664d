"""The parsed corpus is cached whole or not at all (realtime/training/data.py save_cache, read_cache).

Two benchmarks started together parsed the same collection and wrote one cache file at once; every
later run died on it ("BadZipFile: File name in directory ... and header ... differ"). Now each writer
renames a file of its own into place, and a cache that cannot be read is parsed again.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from realtime.training import data

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from realtime.training.data import save_cache
    rng = np.random.default_rng(int(sys.argv[2]))
    arrays = {f"piece{i}": rng.integers(0, 128, (20000, 4)) for i in range(8)}
    for _ in range(15):
        save_cache(Path(sys.argv[1]), arrays)
""")


def test_two_writers_at_once_never_leave_a_file_a_reader_cannot_read(tmp_path):
    path = tmp_path / "corpus" / "tunes.npz"
    data.save_cache(path, {"piece0": np.zeros((2, 4), dtype=np.int64)})
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(seed)]) for seed in (1, 2)]
    reads = 0
    while any(w.poll() is None for w in writers):
        with np.load(path) as cached:  # raises on a half-written or interleaved file
            for name in cached.files:
                cached[name].sum()
        reads += 1
    assert [w.returncode for w in writers] == [0, 0] and reads > 5
    assert len(data.read_cache(path)) == 8
    assert [p.name for p in path.parent.iterdir()] == ["tunes.npz"]  # no temporary file left behind


def test_a_damaged_cache_is_parsed_again(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REALTIME_CACHE", str(tmp_path))
    fresh = data.load_collection("ryansMammoth", limit=3, workers=1)
    cache = tmp_path / "corpus" / "ryansMammoth-first3.npz"
    whole = cache.read_bytes()
    cache.write_bytes(whole[: len(whole) // 2])  # a run killed mid-write, before writes were atomic
    again = data.load_collection("ryansMammoth", limit=3, workers=1)
    assert f"the corpus cache {cache} cannot be read" in capsys.readouterr().err
    assert list(again) == list(fresh) and all(np.array_equal(again[k], fresh[k]) for k in fresh)
    assert data.read_cache(cache) is not None  # written whole again
