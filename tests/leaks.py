"""Leak checks over text a user or auditor can read (records, logs, errors, files).

A secret such as a metric value ``0.8137`` must appear in no sink, neither whole
nor without its leading ``0.``. Hex digests and addresses legitimately contain
any run of digits, so a plain substring test on ``8137`` fails at random on a
salted hash; these helpers look for the value as a token of its own instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_HEX = re.compile(r"0x[0-9a-fA-F]+")


def without_hex(text: str) -> str:
    """``text`` with every ``0x…`` hex token (digest, address, salt) blanked."""
    return _HEX.sub("0x", text)


def numeric_leaks(text: str, values: Iterable[str]) -> list[str]:
    """The ``values`` (decimal strings) that occur in ``text`` as numbers of their own.

    A value counts when it is not part of a longer number or hex token: ``8137``
    is found in ``"auc":8137`` and in ``0.8137``'s digits after the point when
    listed, never inside ``0x…e8137…``.
    """
    plain = without_hex(text)
    found = []
    for value in values:
        pattern = rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9])"
        if re.search(pattern, plain):
            found.append(value)
    return found
