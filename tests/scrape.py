"""Scraping a process's ``/metrics`` in tests: samples by name and labels, and polling until a condition."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """Status and body of a GET (an HTTP error status is returned, not raised)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()


def scrape(base_url: str) -> Samples:
    """Every sample of ``base_url``/metrics (names as exposed: ``_total``, ``_bucket``, ... included)."""
    status, body = get(base_url + "/metrics")
    assert status == 200, body
    return {
        (sample.name, frozenset(sample.labels.items())): float(sample.value)
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.1) -> object:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass (None)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = predicate()
        except (OSError, AssertionError):  # not listening yet, or a scrape that is not 200 yet
            got = None
        if got:
            return got
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


METRICS_LINE = re.compile(r"metrics on (http://[0-9.]+:\d+)/metrics")


def metrics_url_in(log: Path, timeout: float) -> str:
    """The metrics base URL a process printed to ``log`` (it serves on port 0: any free port)."""
    found = wait_for(lambda: METRICS_LINE.search(log.read_text(errors="replace")), timeout)
    assert found, f"no 'metrics on http://…' line in {log}:\n{log.read_text(errors='replace')}"
    assert isinstance(found, re.Match)
    return str(found.group(1))
