"""Cost of TLS on the parties' links: the same job on two `secureflow node` processes, with and without TLS.

Starts two nodes (alice, bob) on 127.0.0.1 against the Redis at ``--redis-url`` (``--trust-redis``: no
chain), once with their default mutual TLS and once with ``--no-tls``, alternately for ``--rounds``
rounds; each round starts a distributed engine (cold start: nodes' ports, SecretFlow and SPU links)
and runs PSI -> StandardScaler -> SS-LR -> secure prediction at ``--rows`` rows. Prints the start and
per-step times of each run, the CPU seconds the two node processes spent during the job (with TLS: their
tunnels) and the load average; nothing is asserted.

Run: ``.venv/bin/python scripts/bench_tls.py [--rows 10000] [--epochs 3] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import pandas as pd
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from secureflow.compute.runner import run_job
from secureflow.compute.worker.engine import REPO_ROOT, Engine
from secureflow.compute.worker.link import node_alive_key
from secureflow.ledger.recorder import OutboxRecorder
from secureflow.ledger.store import open_store

PARTIES = ("alice", "bob")


def data(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = (x @ np.array([0.8, -0.4, 1.2, 0.3, -0.9, 0.5]) + rng.logistic(size=n) > 0).astype(int)
    ids = rng.permutation(n * 2)[:n]
    a = pd.DataFrame({"id": ids, "a0": x[:, 0], "a1": x[:, 1], "a2": x[:, 2], "y": y})
    b = pd.DataFrame({"id": ids, "b0": x[:, 3], "b1": x[:, 4], "b2": x[:, 5]}).sample(frac=1, random_state=1)
    return a, b


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of the process ``pid`` itself (a node: its relay and TLS tunnel)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_nodes(root: Path, prefix: str, redis_url: str, tls: bool) -> list[subprocess.Popen[bytes]]:
    procs = []
    for party in PARTIES:
        (root / party).mkdir(parents=True, exist_ok=True)
        log = open(root / f"{party}-node.log", "ab")  # noqa: SIM115 - kept open for the child
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "secureflow.api",
                    "node",
                    "--party",
                    party,
                    "--data-dir",
                    str(root / party),
                    "--redis-url",
                    redis_url,
                    "--prefix",
                    prefix,
                    "--trust-redis",
                    *([] if tls else ["--no-tls"]),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(REPO_ROOT),
            )
        )
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 120
    while not all(client.exists(node_alive_key(prefix, p)) for p in PARTIES):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit("the nodes did not start (see their logs)")
        time.sleep(0.2)
    return procs


def one_run(root: Path, redis_url: str, tls: bool, rows: int, epochs: int, tag: str) -> dict[str, Any]:
    prefix = f"bench-tls-{uuid.uuid4().hex[:8]}"
    nodes = start_nodes(root / tag, prefix, redis_url, tls)
    engine = Engine(PARTIES, root / tag / "coord", launcher="distributed", redis_url=redis_url,
                    redis_prefix=prefix, start_timeout=300.0, step_timeout=1800.0)  # fmt: skip
    store = open_store(f"sqlite:///{root / tag / 'ledger.db'}")
    try:
        t0 = time.monotonic()
        engine.start()
        start_s = time.monotonic() - t0
        a, b = data(rows, 3)
        for party, df in (("alice", a), ("bob", b)):
            path = root / tag / party / "data" / "t.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(path, index=False)
        feats = ["a0", "a1", "a2", "b0", "b1", "b2"]
        manifest = {
            "name": "bench-tls",
            "parties": [{"name": p, "address": engine.addresses[p]} for p in PARTIES],
            "datasets": {"r": {"alice": "t.csv", "bob": "t.csv"}},
            "steps": [
                {"algorithm": "psi", "params": {"key": "id"}, "inputs": {"table": "r"},
                 "outputs": {"table": "j"}},
                {"algorithm": "standard_scaler", "params": {"columns": feats}, "inputs": {"table": "j"},
                 "outputs": {"table": "s"}},
                {"algorithm": "ss_lr", "params": {"label": "y", "features": feats, "epochs": epochs,
                                                  "learning_rate": 0.3, "batch_size": 1024},
                 "inputs": {"table": "s"}, "outputs": {"model": "lr"}},
                {"algorithm": "secure_predict", "params": {"receiver": "alice"},
                 "inputs": {"table": "s", "model": "lr"}, "outputs": {"table": "pred"}},
            ],
        }  # fmt: skip
        cpu0 = sum(_cpu_s(p.pid) for p in nodes)
        res = run_job(engine, manifest, OutboxRecorder(store))
        if not res.succeeded:
            raise SystemExit(f"the job failed: {res.error_class}: {res.error_message}")
        return {
            "tls": tls,
            "start_s": round(start_s, 2),
            "job_s": round(res.seconds, 2),
            "nodes_cpu_s": round(sum(_cpu_s(p.pid) for p in nodes) - cpu0, 2),
            "steps_s": {s.algorithm: round(s.seconds, 2) for s in res.steps},
            "loadavg": os.getloadavg(),
        }
    finally:
        engine.shutdown()
        store.close()
        for proc in nodes:
            proc.terminate()
        for proc in nodes:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    with TemporaryDirectory(prefix="bench-tls-") as tmp:
        for r in range(args.rounds):
            for tls in (True, False) if r % 2 == 0 else (False, True):
                tag = f"r{r}-{'tls' if tls else 'plain'}"
                out = one_run(Path(tmp), args.redis_url, tls, args.rows, args.epochs, tag)
                print(out, flush=True)
                for log in sorted((Path(tmp) / tag).glob("*-node.log")):  # the tunnels' traffic (TLS only)
                    lines = log.read_text().splitlines()
                    carried = [line.split("carried ")[-1] for line in lines if "carried" in line]
                    if carried:
                        print(f"  {log.name}: TLS tunnel carried {', '.join(carried)}", flush=True)


if __name__ == "__main__":
    main()
