"""The scrubber a party worker applies to its job log lines: its own cells and long hex runs redacted, the
rest of the line (times, counts, addresses, the job id) kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from secureflow.compute.joblogs import MAX_LINE_CHARS, REDACTED, JobLogHandler, Scrubber, read_job_log
from secureflow.compute.scrub import Scanner, table_renderings

JOB = "0x" + "ab" * 32
KEY = "0x" + "5c" * 32
ADDRESS = "0x" + "12" * 20


def _scrubber() -> Scrubber:
    df = pd.DataFrame({"x": [0.123456789012, 3.25], "n": [1234567, 7], "city": ["Lisbon-Nord", "Oslo"]})
    return Scrubber([Scanner.of_tables([df])], keep=[JOB])


def test_own_cells_and_keys_are_redacted_in_any_rendering() -> None:
    scrub = _scrubber().scrub
    for planted in ("0.123456789012", "0.123457", "0.12345679", "1234567", "Lisbon-Nord", KEY, KEY[2:]):
        line = f"2026-12-04 16:30:37,944 INFO step 1 value={planted}, more"
        assert scrub(line) == f"2026-12-04 16:30:37,944 INFO step 1 value={REDACTED}, more", planted


def test_the_rest_of_the_line_is_kept() -> None:
    line = f"2026-12-04 16:30:37,123456 INFO job {JOB} party {ADDRESS}: 200 rows, 3.25 in 0.61 s (Oslo)"
    assert _scrubber().scrub(line) == line  # short values (3.25, Oslo) are not looked for: they say little


def test_the_workers_table_scanner_finds_every_rendering_the_tests_scanner_looks_for() -> None:
    """`Scanner.of_tables` (cells in sorted arrays and sets, cheap to build) finds each of `renderings`."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame(
        {
            "x": rng.normal(size=300) * 40,
            "n": rng.integers(10_000, 10**9, 300),
            "w": [f"w{i:05d}" for i in range(300)],
            "e": [f"user{i}@example.org" for i in range(300)],
            "z": rng.integers(0, 3, 300).astype(float),
        }
    )
    scanner = Scanner.of_tables([df])
    tokens = table_renderings([df])
    assert tokens and all(scanner.find(f"value {token}, next") == [token] for token in tokens)
    assert Scanner(tokens).find("took 0.61 s, 200 rows at 16:59:14.602940") == []
    assert scanner.find("took 0.61 s, 200 rows at 16:59:14.602940") == []


def test_a_read_returns_a_page_of_lines_each_cut_to_a_bounded_length(tmp_path: Path) -> None:
    writer = JobLogHandler(tmp_path)
    writer.write(JOB, "first")
    writer.write(JOB, "x" * (MAX_LINE_CHARS * 3))
    writer.write(JOB, "third")
    lines, nxt = read_job_log(tmp_path, JOB, after=0, limit=2)
    assert nxt == 2 and lines[0] == "first" and len(lines[1]) == MAX_LINE_CHARS and lines[1].endswith("…")
    assert read_job_log(tmp_path, JOB, after=nxt) == (["third"], 3)
    assert (tmp_path / "joblogs").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "joblogs" / f"{JOB}.log").stat().st_mode & 0o777 == 0o600
