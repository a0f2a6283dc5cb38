"""The scrubber a party worker applies to its job log lines: its own cells and long hex runs redacted, the
rest of the line (times, counts, addresses, the job id) kept."""

from __future__ import annotations

import json
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


def _people() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "city": ["Oslo", "Lisbon-Nord", "Rome"],
            "price": [3.25, 12345.0, 250.0],
            "qty": [4217, 38, 610],
        }
    )


def test_short_values_whole_floats_and_case_changed_strings_are_redacted() -> None:
    """Review finding F2: what a logger prints of a party's cells that the scanner missed. Short cells (a
    3-4 letter word, a 3-4 digit number, a float of few digits) as a value (``key=value``, ``key: value``,
    quoted, a list item); whole floats with their decimals (``12345.0``, ``%f``) or as an int (``%d``);
    strings upper-, lower- or title-cased."""
    scrub = Scrubber([Scanner.of_tables([_people()])]).scrub
    cell = {"city": "Oslo", "price": 3.25, "qty": 4217}
    planted = {
        f"row {cell}": "row {'city': '[redacted]', 'price': [redacted], 'qty': [redacted]}",
        json.dumps(cell): '{"city": "[redacted]", "price": [redacted], "qty": [redacted]}',
        "city=OSLO price=3.25": "city=[redacted] price=[redacted]",
        "city: oslo, qty: 4217": "city: [redacted], qty: [redacted]",
        "cities ['Oslo', 'Rome']": "cities ['[redacted]', '[redacted]']",
        "prices [250.0, 3.25]": "prices [[redacted], [redacted]]",
        "price=250": "price=[redacted]",
        "total 12345.0 and 12345.000000 and 1.2345e+04": "total [redacted] and [redacted] and [redacted]",
        "moved to LISBON-NORD": "moved to [redacted]",
        "moved to lisbon-nord": "moved to [redacted]",
    }
    for line, scrubbed in planted.items():
        assert scrub(line) == scrubbed, line


def test_arrays_tables_and_tabs_a_logger_prints_are_redacted() -> None:
    """Review finding: short cells printed the way numpy and pandas print them (a traceback of a
    ValueError shows them so too) and after a tab: ``[ 610 4217]``, a DataFrame's rows, ``qty:\t4217``."""
    people = _people()
    scrub = Scrubber([Scanner.of_tables([people])]).scrub
    assert scrub(str(np.array([610, 4217]))) == "[ [redacted] [redacted]]"
    rows = str(np.array([[610, 4217], [38, 610]]))  # 38: two digits, too short to be told from chance
    assert scrub(rows) == "[[ [redacted] [redacted]]\n [  38  [redacted]]]", rows
    assert scrub("qty:\t4217") == "qty:\t[redacted]"
    table = scrub(str(people))
    for cell in ("Oslo", "Rome", "3.25", "250.0", "4217", "610"):
        assert cell not in table, table
    assert scrub("step 3 of 5 took 610 ms [2 parties]") == "step 3 of 5 took 610 ms [2 parties]"  # prose


def test_a_realistic_job_log_of_the_party_is_kept_whole() -> None:
    """Low false positives: the lines a party worker writes for a job (its own formats, SecretFlow's and
    SPU's), with counts, timings, times, ports and parameter names, over realistic cells (ages, incomes of
    two decimals, ids 0..2713, cities, a 0/1 label) are written unchanged."""
    rng = np.random.default_rng(7)
    rows = 2714
    df = pd.DataFrame(
        {
            "id": np.arange(rows),
            "age": rng.integers(18, 91, rows),
            "income": np.round(rng.normal(4000, 1500, rows), 2),
            "city": rng.choice(["Oslo", "Bergen", "Lisbon-Nord", "Porto", "Rome"], rows),
            "y": rng.integers(0, 2, rows),
        }
    )
    scrub = Scrubber([Scanner.of_tables([df])], keep=[JOB]).scrub
    at = "2026-12-04 21:05:10,048"
    me = f"{at} INFO secureflow.joblog party alice:"
    log = [
        f"{at} WARNING secureflow.compute.worker party alice consented to job {JOB}",
        f"{at} WARNING secureflow.compute.worker party alice signed createJob of job {JOB} (nonce 0)",
        f"{me} consent done in 0.19 s",
        f"{me} opened dataset raw (2714 rows; columns id, age, income, city, y)",
        f"{me} step 0 (psi) started with parameters key, protocol, receiver",
        f"{me} step 0 (psi) done in 1.08 s",
        f"{me} step 1 (ss_lr) started with parameters batch_size, epochs, eps, features, l2_norm, label, "
        "learning_rate, penalty, reg_type, sig_type",
        f"{at} INFO secretflow.device.driver SPU runtime config: protocol SEMI2K, field FM128, "
        "fxp_fraction_bits 18",
        "[2026-12-04 21:05:11.402] [info] [thread_pool.cc:30] Create a fixed thread pool with size 7",
        "[2026-12-04 21:05:11.517] [info] [context.cc:45] connected to 127.0.0.1:61234 in 3 attempts",
        f"{at} INFO secretflow.ml.linear.ss_sgd epoch 1 of 3 took 0.66 s",
        f"{me} step 1 (ss_lr) done in 2.11 s",
        f"{at} WARNING secureflow.joblog party alice: step 2 (secure_predict) failed in 1.09 s: "
        "StepExecutionError: RuntimeError while handling step",
        f"{me} close_job done in 1.01 s",
    ]
    for line in log:
        assert scrub(line) == line
