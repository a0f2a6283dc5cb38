"""Wording shared by every command's output: counts with their noun ("1 job", "2 jobs")."""

from __future__ import annotations

_IRREGULAR = {"batch": "batches", "party": "parties", "check": "checks", "consent": "consents"}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``"1 job"``, ``"0 jobs"``, ``"3 batches"``: ``count`` with ``noun`` in the number it takes."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {many or _IRREGULAR.get(noun) or noun + 's'}"
