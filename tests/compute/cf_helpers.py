"""Helpers for compute tests: write a party's dataset, build a manifest for the session engine."""

from __future__ import annotations

from typing import Any

import pandas as pd

from secureflow.compute.worker.engine import Engine

PARTIES = ("alice", "bob")


def put(engine: Engine, party: str, name: str, df: pd.DataFrame) -> str:
    """Write ``df`` into ``party``'s data dir as CSV; returns the relative reference."""
    path = engine.data_dir(party) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return name


def manifest(
    engine: Engine,
    datasets: dict[str, dict[str, str]],
    steps: list[dict[str, Any]],
    models: dict[str, str] | None = None,
) -> dict[str, Any]:
    engine.ensure_healthy()
    return {
        "name": "test",
        "parties": [{"name": p, "address": engine.addresses[p]} for p in PARTIES],
        "datasets": datasets,
        "models": models or {},
        "steps": steps,
    }


def read(engine: Engine, party: str, name: str) -> pd.DataFrame:
    return pd.read_csv(engine.data_dir(party) / name)


def vertical_data(n: int = 1000, seed: int = 0, overlap: float = 0.9) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Alice: id, a0..a2, y (binary); bob: id, b0..b2; ``overlap`` of alice's ids are in bob's table."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)) * [1, 2, 0.5, 3, 1, 1] + [0, 5, -1, 2, 0, 10]
    logits = x @ np.array([0.8, -0.4, 1.2, 0.3, -0.9, 0.5]) - 0.5 * 5 * (-0.4) - 0.3 * 2 - 0.5 * 10
    y = (logits + rng.logistic(size=n) > 0).astype(int)
    ids = rng.permutation(n * 2)[:n] + 1000
    alice = pd.DataFrame({"id": ids, "a0": x[:, 0], "a1": x[:, 1], "a2": x[:, 2], "y": y})
    keep = rng.random(n) < overlap
    bob = pd.DataFrame({"id": ids[keep], "b0": x[keep, 3], "b1": x[keep, 4], "b2": x[keep, 5]})
    extra = pd.DataFrame({"id": rng.permutation(n) + 10_000_000, "b0": 0.0, "b1": 0.0, "b2": 0.0})
    bob = pd.concat([bob, extra.iloc[: n // 10]]).sample(frac=1, random_state=seed).reset_index(drop=True)
    return alice.sample(frac=1, random_state=seed + 1).reset_index(drop=True), bob


def joined(alice: pd.DataFrame, bob: pd.DataFrame) -> pd.DataFrame:
    """The plaintext reference of psi(key=id): inner join sorted like the PSI output (by key text)."""
    j = alice.merge(bob, on="id")
    return j.assign(_k=j["id"].astype(str)).sort_values("_k").drop(columns="_k").reset_index(drop=True)
