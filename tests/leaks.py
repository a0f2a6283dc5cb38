"""Leak checks over text a user or auditor can read (records, logs, errors, files).

The scanner is product code (`secureflow.compute.scrub`): a party worker applies the same one to its job
log lines at write time. `scan_sinks` is the one scanner of every sink (tests/sinks.py collects them): each
cell's renderings (`renderings`) as tokens, and any decimal token of `MIN_SIGNIFICANT` digits or more that is
a cell rounded to its own precision.
"""

from __future__ import annotations

from secureflow.compute.scrub import (
    MIN_SIGNIFICANT,
    MIN_TOKEN,
    Scanner,
    numeric_leaks,
    renderings,
    scan_sinks,
    table_renderings,
    without_hex,
)

__all__ = [
    "MIN_SIGNIFICANT",
    "MIN_TOKEN",
    "Scanner",
    "numeric_leaks",
    "renderings",
    "scan_sinks",
    "table_renderings",
    "without_hex",
]
