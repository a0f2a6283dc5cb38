"""Retention pruning (`secureflow.compute.joblogs.prune`) removes only what the worker and node made: job
logs named ``<job id>.log`` and session folders named by a session id, never anything else an operator
keeps there, and never through a symlinked ``sessions`` or ``joblogs`` folder (review: a ``sessions`` link
to a shared scratch disk had everything old on it deleted)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from secureflow.compute.joblogs import prune

OLD = time.time() - 90 * 86400.0


def _age(path: Path) -> None:
    for p in [*path.rglob("*"), path]:
        os.utime(p, (OLD, OLD), follow_symlinks=not p.is_symlink())


def test_prune_removes_only_what_the_node_made(tmp_path: Path) -> None:
    party = tmp_path / "alice"
    session, job_log = "ab" * 16, "0x" + "cd" * 32 + ".log"
    for folder in (f"sessions/{session}", "sessions/backup-2024", "joblogs"):
        (party / folder).mkdir(parents=True)
    (party / "sessions" / "backup-2024" / "customers.csv").write_text("id\n1\n")
    (party / "joblogs" / "notes.txt").write_text("operator notes")
    (party / "joblogs" / job_log).write_text("a line\n")
    _age(party)
    assert prune(party, 30) == 2
    assert not (party / "sessions" / session).exists() and not (party / "joblogs" / job_log).exists()
    assert (party / "sessions" / "backup-2024" / "customers.csv").exists()
    assert (party / "joblogs" / "notes.txt").exists()


def test_prune_does_not_follow_a_symlinked_sessions_or_joblogs_folder(tmp_path: Path) -> None:
    shared = tmp_path / "mnt-scratch"
    (shared / ("ef" * 16)).mkdir(parents=True)
    (shared / ("ef" * 16) / "results.parquet").write_text("x")
    (shared / ("0x" + "12" * 32 + ".log")).write_text("x")
    _age(shared)
    party = tmp_path / "alice"
    party.mkdir()
    (party / "sessions").symlink_to(shared, target_is_directory=True)
    (party / "joblogs").symlink_to(shared, target_is_directory=True)
    assert prune(party, 30) == 0
    assert (shared / ("ef" * 16) / "results.parquet").exists()
    assert (shared / ("0x" + "12" * 32 + ".log")).exists()
