"""Memory-size guards: refuse settings whose tensors cannot fit, before anything is allocated.

A command whose memory grows with a number the user gives (a bank's or an online fit's particles and batch,
a sampling run's samples, the steps of an ω table) estimates from its settings a lower bound of the bytes it
will hold and calls :func:`check_memory` first. An impossible setting is then a one-line ``ValueError``
naming what to lower, instead of an out-of-memory kill or a traceback after minutes of work. The estimates
are lower bounds (they leave out a denoiser's activations, say), so a setting that fits is never refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

FLOAT32, FLOAT64 = 4, 8
SMALL = 2**26
"""Sizes below this many bytes (64 MiB) pass :func:`check_memory` without asking the system."""


def available_memory(device: str | torch.device = "cpu") -> int | None:
    """Bytes that can still be allocated on ``device``: a GPU's free memory, the machine's available memory
    for the CPU (Linux ``MemAvailable``, else the free pages the system reports); None where it cannot be
    told (then nothing is refused)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(size: int) -> str:
    return f"{size / 2**30:.3g} GiB"


def check_memory(needed: int, what: str, lower: str, device: str | torch.device = "cpu") -> None:
    """Raise ``ValueError`` when ``needed`` bytes, a lower bound of what ``what`` (words for the message)
    will hold on ``device``, exceed the memory available there; the message says to lower ``lower`` (the
    flags that set the size, e.g. ``"--particles or --batch-size"``)."""
    available = available_memory(device) if needed >= SMALL else None
    if available is not None and needed > available:
        where = "" if torch.device(device).type == "cpu" else f" on {device}"
        raise ValueError(
            f"{what} would take at least {_gib(needed)} of memory, more than the {_gib(available)} available"
            f"{where}; lower {lower}"
        )


def pair_count(particles: int) -> int:
    """Pairs a self-consistency item's statistics cover: m² attraction and m(m − 1)/2 repulsion pairs."""
    return particles * particles + particles * (particles - 1) // 2


def particle_bytes(items: int, particles: int, numbers: int) -> int:
    """A lower bound of the memory of ``items`` self-consistency items with m = ``particles`` particles of
    ``numbers`` values each: the noise, the true and guided particles and the denoiser's predictions (9
    float32 tensors ``[n, m, numbers]``), the Gram matrices of the particles (6 float64 ``[n, m, m]``) and
    their pair statistics (3 float64 per pair, :func:`pair_count`)."""
    per_item = 9 * particles * numbers * FLOAT32
    per_item += (6 * particles * particles + 3 * pair_count(particles)) * FLOAT64
    return items * per_item
