"""The benchmarks' results files: one JSON object per script, its entries keyed by what they measured."""

from __future__ import annotations

import json
from pathlib import Path

from learnguide.checkpoints import atomic_write_text, strict_json


def read_results(path: Path) -> dict:
    """The results object in the JSON file ``path``, or ``{}`` when there is none yet."""
    return json.loads(path.read_text()) if path.is_file() else {}


def add_results(path: Path, entries: dict) -> dict:
    """Set each key of ``entries`` in the results file ``path`` and write it atomically; returns the whole
    object. The file is read again just before writing, so entries that another run added meanwhile (a
    second checkpoint measured in parallel, say) are kept; NaN and ±Inf are written as ``null``."""
    results = read_results(path) | entries
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, strict_json(results, indent=1))
    return results
