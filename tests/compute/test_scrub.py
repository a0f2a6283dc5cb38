"""The scrubber a party worker applies to its job log lines: its own cells and long hex runs redacted, the
rest of the line (times, counts, addresses, the job id) kept."""

from __future__ import annotations

import pandas as pd

from secureflow.compute.joblogs import REDACTED, Scrubber
from secureflow.compute.scrub import Scanner, table_renderings

JOB = "0x" + "ab" * 32
KEY = "0x" + "5c" * 32
ADDRESS = "0x" + "12" * 20


def _scrubber() -> Scrubber:
    df = pd.DataFrame({"x": [0.123456789012, 3.25], "n": [1234567, 7], "city": ["Lisbon-Nord", "Oslo"]})
    return Scrubber(Scanner(table_renderings([df])), keep=[JOB])


def test_own_cells_and_keys_are_redacted_in_any_rendering() -> None:
    scrub = _scrubber().scrub
    for planted in ("0.123456789012", "0.123457", "0.12345679", "1234567", "Lisbon-Nord", KEY, KEY[2:]):
        line = f"2026-12-04 16:30:37,944 INFO step 1 value={planted}, more"
        assert scrub(line) == f"2026-12-04 16:30:37,944 INFO step 1 value={REDACTED}, more", planted


def test_the_rest_of_the_line_is_kept() -> None:
    line = f"2026-12-04 16:30:37,123456 INFO job {JOB} party {ADDRESS}: 200 rows, 3.25 in 0.61 s (Oslo)"
    assert _scrubber().scrub(line) == line  # short values (3.25, Oslo) are not looked for: they say little
