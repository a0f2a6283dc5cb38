"""Real `secureflow node` processes for the distributed-mode tests: start, wait until they beat, stop."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import redis

from secureflow.compute.worker.engine import REPO_ROOT
from secureflow.compute.worker.link import node_alive_key

REDIS_URL = "redis://127.0.0.1:6379/0"


class Nodes:
    def __init__(self, root: Path, prefix: str) -> None:
        self.root, self.prefix = root, prefix
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def dir(self, party: str) -> Path:
        return self.root / party

    def start(self, party: str) -> None:
        self.dir(party).mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        with open(self.root / f"{party}-node.log", "ab") as log:
            self.procs[party] = subprocess.Popen(
                [sys.executable, "-m", "secureflow.api", "node", "--party", party,
                 "--data-dir", str(self.dir(party)), "--redis-url", REDIS_URL, "--prefix", self.prefix],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=str(REPO_ROOT),
            )  # fmt: skip

    def put(self, party: str, name: str, df: pd.DataFrame) -> str:
        path = self.dir(party) / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(path, index=False)
        return name

    def wait_up(self, rds: redis.Redis, parties: tuple[str, ...], timeout: float = 120.0) -> None:
        """Until every node beats (its heartbeat key exists): it is running and reads its queue."""
        deadline = time.monotonic() + timeout
        while not all(rds.exists(node_alive_key(self.prefix, p)) for p in parties):
            for party in parties:
                proc = self.procs.get(party)
                if proc is not None and proc.poll() is not None:
                    raise AssertionError(f"the node of {party} exited with {proc.returncode}")
            assert time.monotonic() < deadline, f"the nodes did not beat within {timeout} s"
            time.sleep(0.1)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
