"""What the figures were measured on: CPU model, cores, caches, memory, and the software stack."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

CACHE_ROOT = Path("/sys/devices/system/cpu/cpu0/cache")
PACKAGES = ("numpy", "onnxruntime", "numba", "torch", "muspy", "music21")


def cpu_model() -> str:
    """The marketing name of the CPU (Linux /proc/cpuinfo, else what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def caches(root: Path = CACHE_ROOT) -> list[dict]:
    """The caches one core sees, from sysfs: level, kind, size and how many cores share each."""
    out = []
    for index in sorted(root.glob("index*")):
        try:
            def read(name: str) -> str:
                return (index / name).read_text().strip()
            shared = read("shared_cpu_list") if (index / "shared_cpu_list").exists() else ""
            out.append({"level": int(read("level")), "type": read("type"), "size": read("size"),
                        "shared_by_cpus": shared})
        except (OSError, ValueError):
            continue
    return out


def cache_line(entries: list[dict]) -> str:
    """"L1d 32K, L1i 32K, L2 512K, L3 32768K (shared by 0-1)" in one line for the summary."""
    parts = []
    for c in entries:
        kind = {"Data": "d", "Instruction": "i"}.get(c["type"], "")
        shared = f" (shared by CPUs {c['shared_by_cpus']})" if c["level"] >= 3 and c["shared_by_cpus"] else ""
        parts.append(f"L{c['level']}{kind} {c['size']}{shared}")
    return ", ".join(parts) or "unknown"


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine_info() -> dict:
    """Everything the summary's header states about the machine."""
    entries = caches()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "caches": entries,
        "cache_summary": cache_line(entries),
        "memory_gib": memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "load_average_at_start": load,
        "versions": versions(),
    }
