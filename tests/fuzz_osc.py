"""Coverage-guided fuzzing (atheris) of the two parsers hostile input reaches: OSC datagrams and patches.

Run by tests/test_fuzz.py for a bounded number of inputs; run it by hand for longer:
`.venv/bin/python tests/fuzz_osc.py -runs=1000000` (or with no -runs, until Ctrl-C).
Any exception other than the parsers' own "drop this" and "bad patch" errors is a crash.
"""

import sys

import atheris

# our parsers and the TOML reader before them, not numpy and the rest they import (instrumenting everything
# took 45 s before the first input)
with atheris.instrument_imports(include=["realtime", "tomllib"]):
    import tomllib

    from realtime.errors import PatchError
    from realtime.io.oscaddress import AddressTable
    from realtime.io.osccodec import Drop, decode_packet
    from realtime.patch import parse_patch

TABLE = AddressTable()


def one_input(data: bytes) -> None:
    if data[:1] == b"T":  # a patch
        try:
            parse_patch(tomllib.loads(data[1:].decode("utf-8", "replace")), "fuzz.toml")
        except (tomllib.TOMLDecodeError, PatchError):
            pass
        return
    try:
        messages = decode_packet(data)
    except Drop:
        return
    for address, tags, values in messages:
        try:
            TABLE.event(address, tags, values)
        except Drop:
            pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
