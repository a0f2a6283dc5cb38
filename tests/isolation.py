"""Isolation check of a multi-party job: what each viewer can read holds no other party's cell.

A *viewer* is a party's node (its process log, the files of its host folder but its own dataset and its
key, the Redis entries addressed to it) or the ``coordinator`` side (the API's database and log, the
coordinator's log and folder, every Redis entry of the job, the chain's calldata and events). Each party
owns a set of secrets (`renderings` of every cell of its own dataset, and what an algorithm reveals to it
alone, such as the scores `secure_predict` sends its named receiver). `isolation_leaks` scans each viewer's
sinks for the secrets of every *other* party (the coordinator: of every party), minus those the viewer
holds itself (a key in the PSI intersection is also a cell of the viewer's own table): whatever it finds
crossed from one party to a place it must not reach.

`Views` gathers the sinks (tests/sinks.py) by viewer; `node_view` reads a node's own host. What crosses
between two parties' workers is binary (SecretFlow's and SPU's links: serialised objects, shares):
`float_patterns` and `binary_leaks` find a float cell there as the 8 bytes of its IEEE double.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from leaks import Scanner
from sinks import folder_files

COORDINATOR = "coordinator"


@dataclass
class Views:
    """Sinks (name -> text) by viewer (a party's name or `COORDINATOR`)."""

    sinks: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, viewer: str, sinks: Mapping[str, str]) -> None:
        self.sinks.setdefault(viewer, {}).update(sinks)

    def names(self, viewer: str) -> set[str]:
        return set(self.sinks.get(viewer, {}))


def node_view(folder: Path, own: Iterable[str]) -> dict[str, str]:
    """Every file of a node's host folder as text (``<relative path>``), except its own datasets (``own``:
    paths relative to its ``data`` folder) and its ``secrets`` folder (its member key)."""
    skip = {Path("data") / name for name in own}
    return {k: v for k, v in folder_files(folder, skip=("secrets",)).items() if Path(k) not in skip}


def redis_view(redis_sinks: Mapping[str, str], party: str) -> dict[str, str]:
    """The Redis sinks (`RedisMonitor.sinks`, by key) of the keys addressed to ``party``
    (``<prefix>:party:<party>:…``)."""
    marker = f":party:{party}:"
    return {k: v for k, v in redis_sinks.items() if marker in k + ":"}


def isolation_leaks(views: Views, secrets: Mapping[str, set[str]]) -> dict[str, dict[str, list[str]]]:
    """For each viewer, its sinks holding a secret of another party (``secrets``: party -> its renderings)
    that the viewer does not hold itself, with the secrets found; viewers and sinks without any are left
    out."""
    found: dict[str, dict[str, list[str]]] = {}
    for viewer, sinks in views.sinks.items():
        own = secrets.get(viewer, set())
        foreign = set().union(*(s for p, s in secrets.items() if p != viewer)) - own
        scanner = Scanner(foreign)
        leaks = {name: hits for name, text in sinks.items() if (hits := scanner.find(text))}
        if leaks:
            found[viewer] = leaks
    return found


def float_patterns(tables: Iterable[pd.DataFrame]) -> dict[bytes, str]:
    """Every non-integral float cell of the tables as its IEEE double (little- and big-endian) -> its repr.
    Integers are left out: their 8 bytes (mostly zeros) occur by chance in any framing of lengths."""
    out: dict[bytes, str] = {}
    for table in tables:
        for column in table.columns:
            series = table[column]
            if not pd.api.types.is_float_dtype(series):
                continue
            values = series.dropna().to_numpy(dtype=float)
            for value in values[np.isfinite(values) & (values != np.floor(values))]:
                out[struct.pack("<d", value)] = out[struct.pack(">d", value)] = repr(float(value))
    return out


def binary_leaks(data: bytes, patterns: Mapping[bytes, str]) -> list[str]:
    """The cells (`float_patterns`) whose 8 bytes occur anywhere in ``data``, sorted."""
    found = {patterns[data[i : i + 8]] for i in range(len(data) - 7) if data[i : i + 8] in patterns}
    return sorted(found)
