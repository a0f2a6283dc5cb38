"""The operations files in ``scripts/ops/``: Prometheus alert rules, their unit tests and a sample
configuration checked by ``promtool`` (Debian's ``prometheus`` package, installed by
``scripts/bootstrap.sh --test-tools``), and the Grafana dashboard.

Every metric a rule or a dashboard panel queries must be one the code really exposes: the names are
collected from the real registries (the anchoring worker's, a party node's and the API's, their
scrape-time collectors reading a real SQLite store), not from a list kept by hand.

Without promtool the promtool tests fail under ``CI`` and are skipped otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from secureflow.api.coordinator.metrics import CoordinatorMetrics
from secureflow.api.server.metrics import ApiMetrics, LedgerCollector
from secureflow.api.server.notify import StatusMetrics
from secureflow.compute.worker.node_metrics import NodeMetrics
from secureflow.ledger.anchoring_metrics import AnchoringMetrics
from secureflow.ledger.store.schemas import IndexedBlock
from secureflow.ledger.store.sql import open_store

ROOT = Path(__file__).resolve().parents[1]
OPS = ROOT / "scripts" / "ops"
RULES = OPS / "prometheus" / "alerts.yml"
RULE_TESTS = OPS / "prometheus" / "alerts_test.yml"
CONFIG = OPS / "prometheus" / "prometheus.yml"
DASHBOARD = OPS / "grafana" / "secureflow.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
METRIC = re.compile(r"(?<![\w:])secureflow_[a-z0-9_]+")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = (
            "promtool is missing: run scripts/bootstrap.sh --test-tools (it installs Debian's prometheus)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so the alert rules must be checked")
        pytest.skip(reason)
    return found


def run_promtool(*args: str, cwd: Path = RULES.parent) -> str:
    result = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_alert_rules_pass_promtool_check() -> None:
    out = run_promtool("check", "rules", RULES.name)
    assert "SUCCESS" in out and f"{len(alert_names()) + 1} rules found" in out


def test_alert_rules_pass_their_unit_tests() -> None:
    assert "SUCCESS" in run_promtool("test", "rules", RULE_TESTS.name)


def test_sample_prometheus_config_is_valid_and_loads_the_rules(tmp_path: Path) -> None:
    # promtool checks that the API key file it names exists: a copy names a stand-in
    key = "/etc/prometheus/secureflow-metrics.key"
    assert key in CONFIG.read_text()
    (tmp_path / "metrics.key").write_text("a stand-in key\n")
    (tmp_path / CONFIG.name).write_text(CONFIG.read_text().replace(key, str(tmp_path / "metrics.key")))
    shutil.copy(RULES, tmp_path / RULES.name)
    out = run_promtool("check", "config", CONFIG.name, cwd=tmp_path)
    assert "1 rule files found" in out and f"{len(alert_names()) + 1} rules found" in out


def alert_names() -> list[str]:
    return re.findall(r"^\s+- alert: (\w+)$", RULES.read_text(), re.M)


def test_every_alert_fires_in_a_unit_test() -> None:
    firing = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels:", RULE_TESTS.read_text()))
    names = alert_names()
    assert len(names) >= 10 and len(set(names)) == len(names)
    assert set(names) <= firing, f"alerts never shown firing in {RULE_TESTS.name}: {set(names) - firing}"
    required = {
        "SecureflowAnchoringBacklogGrowing",
        "SecureflowAnchoringOldestPendingTooOld",
        "SecureflowChainReorgBeyondConfirmations",
        "SecureflowNodeDown",
        "SecureflowJobStuck",
    }
    assert required <= set(names)


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name the anchoring worker, a party node, a coordinator and the API expose."""
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('ops') / 'ledger.db'}")
    try:
        store.index_events(
            [],
            [IndexedBlock(block_number=7, block_hash="0x" + "11" * 32, parent_hash="0x" + "22" * 32)],
            "events",
        )
        anchoring = AnchoringMetrics()
        anchoring.watch(store, nonces=SimpleNamespace(resyncs=0, gaps_healed=0), checkpoint="events")
        api = ApiMetrics()
        api.add_ledger(LedgerCollector(store, lambda: 9, "events"))
        api.add_registry(StatusMetrics().registry)  # as the app serves its status notifier's counters
        node = NodeMetrics("alice", lambda: ("idle", None))
        coordinator = CoordinatorMetrics(2)
        registries: list[CollectorRegistry] = [
            anchoring.registry,
            api.registry,
            node.registry,
            coordinator.registry,
        ]
        names: set[str] = set()
        for registry in registries:
            for family in registry.collect():
                # a labelled metric with no sample yet (e.g. pauses by error class) still exists
                names.update(sample.name for sample in family.samples)
                names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        return names
    finally:
        store.close()


def test_the_metrics_registries_expose_what_the_readme_names(exposed: set[str]) -> None:
    for name in (
        "secureflow_anchoring_records",
        "secureflow_anchoring_oldest_pending_age_seconds",
        "secureflow_anchoring_batch_size_records_bucket",
        "secureflow_anchoring_batch_latency_seconds_bucket",
        "secureflow_anchoring_tx_errors_total",
        "secureflow_nonce_resyncs_total",
        "secureflow_chain_reorgs_total",
        "secureflow_jobs",
        "secureflow_anchoring_head_block",
        "secureflow_indexer_checkpoint_block",
        "secureflow_node_heartbeat_timestamp_seconds",
        "secureflow_node_worker_state",
        "secureflow_node_requests_total",
        "secureflow_node_log_requests_total",
        "secureflow_jobs_stuck",
    ):
        assert name in exposed, name
    readme = (ROOT / "README.md").read_text()
    documented = {n for n in METRIC.findall(readme)}
    families = {re.sub(r"_(bucket|count|sum|created)$", "", n) for n in exposed}
    assert documented, "the README's operations section names the metrics"
    assert documented <= families | exposed, (
        f"named in the README, not exposed: {documented - families - exposed}"
    )


def test_alert_rules_query_only_exposed_metrics(exposed: set[str]) -> None:
    used = set(METRIC.findall(RULES.read_text()))
    assert "secureflow_anchoring_oldest_pending_age_seconds" in used
    assert used <= exposed, f"not exposed by any registry: {used - exposed}"


def test_grafana_dashboard_is_json_whose_panels_query_exposed_metrics(exposed: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 15
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        exprs = [t["expr"] for t in panel["targets"]]
        assert exprs, f"panel {panel['title']!r} has no query"
        names = {n for e in exprs for n in METRIC.findall(e)}
        assert names, f"panel {panel['title']!r} queries no secureflow metric"
        assert names <= exposed, f"panel {panel['title']!r} queries {names - exposed}, which nothing exposes"
        assert panel["datasource"]["uid"] == "${datasource}"
