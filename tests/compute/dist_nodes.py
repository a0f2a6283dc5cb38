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
from secureflow.compute.worker.link import node_warm

REDIS_URL = "redis://127.0.0.1:6379/0"


class Nodes:
    """Node processes on one key prefix; ``chain`` (RPC URL, deployment file): they check signatures and
    the chain (given by environment, as an operator may); without it they trust Redis (``--trust-redis``)."""

    def __init__(self, root: Path, prefix: str, chain: tuple[str, Path] | None = None) -> None:
        self.root, self.prefix, self.chain = root, prefix, chain
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, party: str) -> Path:
        return self.root / f"{party}-node.log"

    def dir(self, party: str) -> Path:
        return self.root / party

    def start(self, party: str, *extra: str) -> None:
        self.dir(party).mkdir(parents=True, exist_ok=True)
        chain_vars = ("SECUREFLOW_RPC_URL", "SECUREFLOW_DEPLOYMENT")
        env = {k: v for k, v in os.environ.items() if k not in chain_vars}
        trust: list[str] = ["--trust-redis"]
        if self.chain is not None:
            env |= {"SECUREFLOW_RPC_URL": self.chain[0], "SECUREFLOW_DEPLOYMENT": str(self.chain[1])}
            trust = []
        with open(self.log(party), "ab") as log:
            self.procs[party] = subprocess.Popen(
                [sys.executable, "-m", "secureflow.api", "node", "--party", party,
                 "--data-dir", str(self.dir(party)), "--redis-url", REDIS_URL, "--prefix", self.prefix,
                 *trust, *extra],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=str(REPO_ROOT),
            )  # fmt: skip

    def put(self, party: str, name: str, df: pd.DataFrame) -> str:
        path = self.dir(party) / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(path, index=False)
        return name

    def wait_up(self, rds: redis.Redis, parties: tuple[str, ...], timeout: float = 120.0) -> None:
        """Until every node beats with its spare worker warm: it is running, reads its queue, and the first
        session takes the spare (no second SecretFlow import competing with the first job's start)."""
        deadline = time.monotonic() + timeout
        while not all(node_warm(rds, self.prefix, p) for p in parties):
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
