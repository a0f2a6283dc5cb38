"""The one leak scanner: a party's cell values, as a reader could find them in text (logs, records, errors).

A secret such as a metric value ``0.8137`` must appear in no sink, neither whole nor without its leading
``0.``. Hex digests and addresses legitimately contain any run of digits, so a plain substring test on
``8137`` fails at random on a salted hash; the scanner looks for each value as a token of its own instead.

`Scanner` is built once from a set of secrets (`renderings` of every cell of a party's own datasets,
`table_renderings`) and then finds, in any text, each cell's renderings as tokens and any decimal token of
`MIN_SIGNIFICANT` digits or more that is a cell rounded to its own precision; a whole number written with
decimals (``12345.0``, ``12345.000000``, ``1.2345e+04``) is the integer cell it equals; words match whatever
their case (``LISBON-NORD``). The seconds of a time of day (``16:59:14.602940``) are not taken for a number.

Short cells (`Scanner.of_tables`: words of 3-4 letters and digits, integers of 3-4 digits, floats whose value
a token of a few digits gives exactly, like ``3.25``) occur by chance in any log line (counts, timings,
ports, words), so they are found only where a logger puts a value (`value_context`): after ``=`` or ``:``,
between quotes, as an item of a ``[...]`` list; shorter ones (a label 0/1, an age, ``3.0`` of a small whole
float) are not looked for at all. The test suite scans every sink with it (`scan_sinks`);
a party worker applies it to its own job log lines before it writes them
(`secureflow.compute.joblogs.Scrubber`, with `Scanner.of_tables`: built from the cells themselves rather
than from every rendering of every cell, it finds at least what the renderings find), so a stored log line
never holds a cell of that party's data, nor a private key or salt.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

_HEX = re.compile(r"0x[0-9a-fA-F]+")


def without_hex(text: str) -> str:
    """``text`` with every ``0x…`` hex token (digest, address, salt) blanked."""
    return _HEX.sub("0x", text)


def _hex_masked(text: str) -> str:
    """``text`` with every ``0x…`` hex token's digits replaced by ``x`` (same offsets as ``text``)."""
    return _HEX.sub(lambda m: "0x" + "x" * (len(m.group()) - 2), text)


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


MIN_TOKEN = 5
"""Shortest rendering a scan looks for: shorter ones (a label 0/1, a count) occur by chance in any log."""


def renderings(value: object) -> set[str]:
    """How a cell value shows up in a record, a log line or a JSON document, each as a token to look for.

    Floats: ``repr`` (JSON, f-strings), ``%.17g``, ``%g`` (six significant digits) and ``%.6f``; integers (and
    integral floats) as written; strings as they are. Renderings shorter than `MIN_TOKEN` characters are
    left out, and so are two-decimal roundings: they occur by chance in timings and counts, and say little
    of a value.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return set()
    if isinstance(value, bool):
        return set()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # a numpy scalar
    out: set[str] = set()
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        out.add(str(int(value)))
    elif isinstance(value, float):
        floats = {repr(value), f"{value:.17g}", f"{value:g}", f"{value:.6f}"}
        # fewer than six digits (a %g whose trailing zeros were dropped, like 11.999) also reads as a log's
        # timestamp or timing: look only for renderings that carry six digits or more
        out |= {r for r in floats if sum(c.isdigit() for c in r) >= 6}
    else:
        out.add(str(value))
    return {r for r in out if len(r.lstrip("-")) >= MIN_TOKEN}


def table_renderings(tables: Iterable[object]) -> set[str]:
    """Every rendering of every cell of the given pandas DataFrames (all columns)."""
    found: set[str] = set()
    for table in tables:
        for column in table.columns:  # type: ignore[attr-defined]
            for value in table[column].tolist():  # type: ignore[index]
                found |= renderings(value)
    return found


MIN_SIGNIFICANT = 7
"""A decimal token with at least this many significant digits is a leak when it is a cell value rounded to
its own precision (``%.8f``, ``%.10g``, ...), whatever the rendering: so many digits never match by chance."""


_TIME_SECONDS = re.compile(r"[0-9]:[0-5][0-9]:$")
"""What precedes the seconds of a time of day (``16:59:14.602940``): not a number rendering."""
_NUMBER = re.compile(r"(?<![0-9A-Za-z.])-?[0-9][0-9.e+-]*(?![0-9A-Za-z])")
_NUMERIC_SECRET = re.compile(r"-?[0-9.e+-]+")
_DECIMAL_SECRET = re.compile(r"-?[0-9]+\.[0-9]+(e[+-]?[0-9]+)?")


def _whole(token: str) -> int | None:
    """The integer a number token equals (``12345``, ``12345.0``, ``1.2345e+04``), or None."""
    try:
        value = float(token)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() else None


def _significant(token: str) -> int:
    mantissa = token.lstrip("-").lower().split("e")[0]
    return len(mantissa.replace(".", "").lstrip("0"))


def _rounds_to_a_cell(token: str, cells: list[float]) -> bool:
    """Whether the decimal ``token`` is one of the sorted ``cells`` rounded to the digits it shows."""
    try:
        value = float(token)
    except ValueError:
        return False
    if value == 0 or not math.isfinite(value):
        return False
    mantissa = token.lstrip("-").lower().split("e")[0]
    try:
        exponent = int(token.lower().split("e")[1]) if "e" in token.lower() else 0
    except ValueError:
        return False
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    tolerance = 0.5 * 10.0 ** (exponent - decimals)
    at = bisect.bisect_left(cells, value)
    return any(0 <= j < len(cells) and abs(cells[j] - value) <= tolerance for j in (at - 1, at))


_ALNUM_RUN = re.compile(r"[0-9A-Za-z]+")
MIN_ROUNDED_DIGITS = 6
"""A decimal token of this many digits or more that is a cell rounded to the digits it shows is one of the
cell's renderings (`renderings` keeps the float renderings of six digits or more)."""


MIN_SHORT = 3
"""Shortest short cell (`Scanner.of_tables`) looked for as a value: characters of a word or a number token."""
_SHORT_INTS = range(100, 10_000)
"""Integer cells found only as a value (three and four digits); longer ones are found anywhere."""


_ARRAY_BODY = re.compile(r"[0-9eE+\-.,\s\[\]]*")
"""What lies between a number and its array's brackets in numpy's or a list's printing: numbers only."""
ARRAY_REACH = 400
"""How far (characters) from a number its array's brackets are looked for."""


def value_context(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` stands where a logger puts a value: after ``=`` or ``:`` (``key=value``,
    ``{'key': value}``, ``key:\tvalue``), between two equal quotes, as an item of a list (after ``[`` or
    ``,``, before ``,`` or ``]``), inside a printed numeric array (``[ 610 4217]``, numpy's rows over
    lines), or as a column of a printed table (after two blanks or a tab: pandas pads its columns). Not
    after ``(`` or in running text: ``(2714 rows; ...)``, ``took 0.61 s, 200 rows``."""
    before = text[max(0, start - 3) : start].rstrip()
    after = text[end : end + 3].lstrip()
    prev, nxt = before[-1:], after[:1]
    if prev in ("=", ":"):
        return True
    if prev in ("'", '"'):
        return nxt == prev
    if prev in ("[", ",") and nxt in (",", "]"):
        return True
    padding = text[max(0, start - 2) : start]
    if "\t" in padding[-1:] or text[end : end + 1] == "\t":
        return True  # tab-separated
    if len(padding) == 2 and padding == "  ":
        return True  # a padded column
    opening = text.rfind("[", max(0, start - ARRAY_REACH), start)
    closing = text.find("]", end, end + ARRAY_REACH)
    return (
        opening >= 0
        and closing >= 0
        and bool(_ARRAY_BODY.fullmatch(text, opening + 1, start))
        and bool(_ARRAY_BODY.fullmatch(text, end, closing))
    )


class Scanner:
    """Finds a party's cells in text: built once per set of secrets (the tests' renderings, `Scanner`) or per
    dataset load (`Scanner.of_tables`, the cells themselves: cheaper than every rendering of every cell)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        secrets = set(secrets)
        self.wanted = {s for s in secrets if _NUMERIC_SECRET.fullmatch(s)}
        self.cells = sorted({float(s) for s in self.wanted if _DECIMAL_SECRET.fullmatch(s)})
        self.abs_cells: list[float] = []
        """Sorted magnitudes of float cells (`of_tables`): a decimal token of `MIN_ROUNDED_DIGITS` digits or
        more that rounds to one is found (every float rendering `renderings` lists is such a rounding)."""
        self.ints: set[int] = set()
        """Magnitudes of integer cells of five digits or more (`of_tables`), found as integer tokens (also
        written with decimals: a whole float logged as ``12345.0``)."""
        self.short_ints: set[int] = set()
        """Magnitudes of integer cells of three or four digits (`of_tables`), found only as a value."""
        self.short_words: set[str] = set()
        """Word cells of 3-4 letters and digits (`of_tables`), lower-cased, found only as a value."""
        self._set_words(secrets - self.wanted)

    def _set_words(self, words: Iterable[str]) -> None:
        words = set(words)
        plain = {w for w in words if _ALNUM_RUN.fullmatch(w)}
        self.plain_words = {w.lower() for w in plain}
        """Words of letters and digits only, lower-cased: found as whole runs of letters and digits in any
        case (a set lookup)."""
        others = sorted(words - plain, key=lambda w: (-len(w), w))
        self._words = (
            re.compile(
                "(?<![0-9A-Za-z])(?:" + "|".join(map(re.escape, others)) + ")(?![0-9A-Za-z])", re.IGNORECASE
            )
            if others
            else None
        )

    @classmethod
    def of_tables(cls, tables: Iterable[object]) -> Scanner:
        """A scanner of every cell of the given pandas DataFrames, finding at least what a `Scanner` of their
        `table_renderings` finds (and any other rounding of six digits or more of a float cell)."""
        import numpy as np
        import pandas as pd

        scanner = cls()
        floats: list[Any] = []
        words: set[str] = set()
        for table in tables:
            assert isinstance(table, pd.DataFrame)  # noqa: S101 - invariant for the type checker
            for column in table.columns:
                series = table[column]
                if pd.api.types.is_bool_dtype(series):
                    continue
                if pd.api.types.is_numeric_dtype(series):
                    values = np.abs(series.dropna().to_numpy(dtype=float))
                    values = values[np.isfinite(values)]
                    integral = values == np.floor(values)
                    scanner.ints.update(int(v) for v in np.unique(values[integral & (values >= 10_000)]))
                    short = integral & (values >= _SHORT_INTS.start) & (values < _SHORT_INTS.stop)
                    scanner.short_ints.update(int(v) for v in np.unique(values[short]))
                    floats.append(values[~integral])
                    continue
                for value in series.dropna().tolist():
                    words |= renderings(value)
                    text = str(value).strip()
                    if MIN_SHORT <= len(text) < MIN_TOKEN and _ALNUM_RUN.fullmatch(text):
                        scanner.short_words.add(text.lower())
        if floats:
            scanner.abs_cells = np.unique(np.concatenate(floats)).tolist()
        numeric = {w for w in words if _NUMERIC_SECRET.fullmatch(w)}
        scanner.wanted |= numeric
        scanner._set_words(words - numeric)
        return scanner

    def _is_cell(self, token: str) -> bool:
        bare = token.lstrip("-")
        if token in self.wanted or bare in self.wanted:
            return True
        decimal = "." in token or "e" in token
        if not decimal:
            return bool(self.ints) and bare.isdigit() and int(bare) in self.ints
        whole = _whole(bare)
        if whole is not None and (whole in self.ints or str(whole) in self.wanted):
            return True  # a whole number written with decimals: 12345.0, 12345.000000, 1.2345e+04
        if re.match(r"-?0[0-9]", token):  # no number is rendered with a leading zero
            return False
        if _significant(token) >= MIN_SIGNIFICANT and _rounds_to_a_cell(token, self.cells):
            return True
        return (
            bool(self.abs_cells)
            and sum(c.isdigit() for c in token.lower().split("e")[0]) >= MIN_ROUNDED_DIGITS
            and _rounds_to_a_cell(bare, self.abs_cells)
        )

    def _is_short_cell(self, token: str) -> bool:
        """A short token (`MIN_SHORT` characters or more) whose value is exactly a short cell's."""
        bare = token.lstrip("-")
        if len(bare) < MIN_SHORT:
            return False
        whole = _whole(bare)
        if whole is not None:
            return whole in self.short_ints
        try:
            value = float(bare)
        except ValueError:
            return False
        at = bisect.bisect_left(self.abs_cells, value)
        return at < len(self.abs_cells) and self.abs_cells[at] == value

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The (start, end) offsets in ``text`` of every secret found, sorted (they may overlap)."""
        plain = _hex_masked(text)
        found: list[tuple[int, int]] = []
        short = bool(self.short_ints or self.abs_cells)
        if self.wanted or self.ints or short:
            for match in _NUMBER.finditer(plain):
                if _TIME_SECONDS.search(plain, max(0, match.start() - 6), match.start()):
                    continue  # the seconds of a time of day (16:59:14.602940), by chance a cell's %.6f
                if self._is_cell(match.group()) or (
                    short
                    and self._is_short_cell(match.group())
                    and value_context(plain, match.start(), match.end())
                ):
                    found.append(match.span())
        if self.plain_words or self.short_words:
            for m in _ALNUM_RUN.finditer(plain):
                word = m.group().lower()
                if word in self.plain_words or (
                    word in self.short_words and value_context(plain, m.start(), m.end())
                ):
                    found.append(m.span())
        if self._words is not None:
            found.extend(m.span() for m in self._words.finditer(plain))
        return sorted(found)

    def find(self, text: str) -> list[str]:
        """The secrets (as written in ``text``) found in ``text``, sorted and without repeats."""
        return sorted({text[a:b] for a, b in self.spans(text)})


def scan_sinks(sinks: Mapping[str, str], secrets: set[str]) -> dict[str, list[str]]:
    """For each sink (name -> its text) the secrets found in it as tokens of their own (not inside a longer
    number, word or hex digest), and the decimal tokens of `MIN_SIGNIFICANT` digits or more that are a cell
    value (a float secret) rounded to their precision; sinks without any are left out."""
    scanner = Scanner(secrets)
    leaks: dict[str, list[str]] = {}
    for name, text in sinks.items():
        found = scanner.find(text)
        if found:
            leaks[name] = found
    return leaks
