"""A classic BPF socket filter that lets only allowlisted IPv4 senders into a UDP socket.

The kernel runs the program on every datagram before it is queued: a foreign sender's datagram is
dropped there and never wakes the receiving process. The kernel counts it in the socket's drop
counter (SO_MEMINFO, like a buffer overflow), so it is still counted, only not told apart.

Program: load the IPv4 source address (network header offset 12, reached through SKF_NET_OFF since a
UDP socket's filter sees the packet from its UDP header on), compare it with each allowed address,
keep the whole datagram on a match, drop it (return 0) otherwise.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import sys

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
SO_DETACH_FILTER = getattr(socket, "SO_DETACH_FILTER", 27)
_SKF_NET_OFF = -0x100000
_LD_W_ABS, _JEQ_K, _RET_K = 0x20, 0x15, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
_INSTRUCTION = struct.Struct("=HBBI")  # struct sock_filter: code, jt, jf, k
MAX_ADDRESSES = 255  # a conditional jump reaches at most 255 instructions ahead


def allowlist_program(addresses: list[str]) -> bytes:
    """The filter's instructions, packed: accept a datagram only from one of `addresses` (IPv4)."""
    if not 0 < len(addresses) <= MAX_ADDRESSES:
        raise ValueError(f"a sender filter takes 1-{MAX_ADDRESSES} addresses, got {len(addresses)}")
    program = [_INSTRUCTION.pack(_LD_W_ABS, 0, 0, (_SKF_NET_OFF + 12) & 0xFFFFFFFF)]
    n = len(addresses)
    for i, address in enumerate(addresses):
        # BPF loads the word in network order and compares it as a host integer
        program.append(_INSTRUCTION.pack(_JEQ_K, n - i, 0, int.from_bytes(socket.inet_aton(address), "big")))
    program.append(_INSTRUCTION.pack(_RET_K, 0, 0, 0))  # no match: drop
    program.append(_INSTRUCTION.pack(_RET_K, 0, 0, 0xFFFFFFFF))  # match: keep all of it
    return b"".join(program)


def attach_allowlist(sock: socket.socket, addresses: list[str]) -> None:
    """Attach the filter to `sock`; raises OSError where the kernel or platform refuses it."""
    if not sys.platform.startswith("linux"):
        raise OSError("socket filters (SO_ATTACH_FILTER) need Linux")
    if sock.family != socket.AF_INET:
        raise OSError("the sender filter handles IPv4 sockets only")
    try:
        code = allowlist_program(addresses)
    except (ValueError, OSError) as err:
        raise OSError(str(err)) from err
    instructions = ctypes.create_string_buffer(code, len(code))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }, native alignment
    fprog = struct.pack("@HP", len(code) // _INSTRUCTION.size, ctypes.addressof(instructions))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies the program here


def detach(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
