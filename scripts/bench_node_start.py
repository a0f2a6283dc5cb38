"""Benchmark of a job session's start on members' nodes: cold (each node spawns its party worker when the
session asks, which imports SecretFlow) against warm (the node's spare worker, SecretFlow imported before
the job: `secureflow.compute.worker.standby`), same machine, same run, with the load average.

Starts two ``secureflow node`` processes (alice, bob; ``--trust-redis``, a key prefix of their own in the
Redis at ``--redis-url``) per mode, then times a distributed `Engine.start()` (table, worker spawn or
hand-over, SecretFlow init, links: what stands between a job's queueing and its first step) ``--repeat``
times, each on a fresh session (with a warm spare, the node warms the next one while idle; the script waits
for it, as a node between jobs would have).

Run: ``.venv/bin/python scripts/bench_node_start.py [--repeat 3] [--redis-url redis://127.0.0.1:6379/0]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from secureflow.compute.worker.engine import REPO_ROOT, Engine
from secureflow.compute.worker.link import node_beat

PARTIES = ("alice", "bob")


def _wait(rds: redis.Redis, prefix: str, warm: bool, since: float, timeout: float = 300.0) -> None:
    """Until every node beat after ``since`` (wall clock) with no session, and with a warm spare if
    ``warm`` (an older beat may still say warm about the spare the last session took)."""
    deadline = time.monotonic() + timeout
    while True:
        beats = [node_beat(rds, prefix, p) for p in PARTIES]
        if all(
            b is not None
            and float(str(b.get("ts", 0))) > since
            and (not warm or b.get("warm"))
            and b.get("sessions") == 0
            for b in beats
        ):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the nodes did not get ready within {timeout} s: {beats}")
        time.sleep(0.2)


def _mode(root: Path, redis_url: str, warm: bool, repeat: int) -> list[float]:
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    rds = redis.Redis.from_url(redis_url)
    procs = []
    for party in PARTIES:
        log = open(root / f"{prefix}-{party}.log", "ab")  # noqa: SIM115 - closed with the process below
        argv = [sys.executable, "-m", "secureflow.api", "node", "--party", party, "--data-dir",
                str(root / prefix / party), "--redis-url", redis_url, "--prefix", prefix, "--trust-redis",
                "--no-tls", *([] if warm else ["--no-warm-worker"])]  # fmt: skip
        procs.append((subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT), log))
    times = []
    try:
        since = 0.0
        for _ in range(repeat):
            _wait(rds, prefix, warm, since)
            engine = Engine(PARTIES, root / prefix / "coord", launcher="distributed", redis_url=redis_url,
                            redis_prefix=prefix, start_timeout=300.0)  # fmt: skip
            t0 = time.perf_counter()
            engine.start()
            times.append(time.perf_counter() - t0)
            engine.shutdown()
            since = time.time()
    finally:
        for proc, log in procs:
            proc.terminate()
            proc.wait(30)
            log.close()
        keys = list(rds.scan_iter(f"{prefix}:*"))
        if keys:
            rds.delete(*keys)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-node-start-") as tmp:
        print(f"load average before: {os.getloadavg()}")
        cold = _mode(Path(tmp), args.redis_url, warm=False, repeat=args.repeat)
        print(f"load average between: {os.getloadavg()}")
        warm = _mode(Path(tmp), args.redis_url, warm=True, repeat=args.repeat)
        print(f"load average after: {os.getloadavg()}")
    print("session start on two nodes (table -> every worker ready), seconds:")
    print(f"  cold (worker spawned per session, --no-warm-worker): {', '.join(f'{t:.2f}' for t in cold)}"
          f"  median {statistics.median(cold):.2f}")  # fmt: skip
    print(f"  warm (the node's spare worker):                      {', '.join(f'{t:.2f}' for t in warm)}"
          f"  median {statistics.median(warm):.2f}")  # fmt: skip
    print(f"  warm / cold: {statistics.median(warm) / statistics.median(cold):.2f}")


if __name__ == "__main__":
    main()
