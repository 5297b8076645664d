"""The private JACK dummy server tests start (it lives in realtime/bench/jackd.py, shared with the
benchmarks)."""

from realtime.bench.jackd import JackServer

__all__ = ["JackServer"]
