"""Sinks for the leak scan of `leaks.py`, each read back as text: the chain, Redis traffic, database rows,
a process's log records and the reports a coordinator receives.

Each capture keeps the raw data (JSON-RPC answers, Redis commands, rows, report dicts) so a test can plant a
value in a *copy* of it and show the scan catches it there, without running a job again.

* Chain (`capture_chain`, `chain_sinks`): every block from genesis with its full transactions
  (``eth_getBlockByNumber(n, true)``) and every log (``eth_getLogs`` from block 0). Each transaction's input
  and each log's data and topics are rendered three ways: decoded with the ABIs of the checked-in contracts
  (function and event arguments; integers in decimal, byte strings as hex and as their printable text), every
  32-byte word as an unsigned and a signed integer, and the printable runs of the raw bytes (a string hidden
  in calldata of any shape).
* Redis (`RedisMonitor`): a MONITOR connection for the duration of a ``with`` block, keeping every command
  that names a key under a prefix (the entries pushed to the nodes' queues and the replies).
* Databases (`sqlite_rows`, `postgres_rows`): every row of every table.
* Logs (`LogCapture`): every record of the process's loggers while the ``with`` block runs, as the API's
  JSON log lines.
* Reports (`report_sinks`): each party's reports that reach the coordinator in `JobResult`, with the fields an
  algorithm reveals to its named receiver by design left out (`REVEALED_BY_DESIGN`).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from secureflow.api.server.logs import JsonFormatter
from secureflow.ledger.devchain import rpc_call

CONTRACTS = ("AuditLedger", "ConsortiumRegistry", "Settlement")
_PRINTABLE = re.compile(rb"[\x20-\x7e]{5,}")


# --------------------------------------------------------------------------------------------- chain


@dataclass
class ChainCapture:
    """The raw JSON-RPC answers: every block with its transactions, every log."""

    blocks: list[dict[str, Any]]
    logs: list[dict[str, Any]]

    def copy(self) -> ChainCapture:
        return copy.deepcopy(self)


def capture_chain(rpc_url: str, first_block: int = 0) -> ChainCapture:
    """Every block from ``first_block`` (default: genesis) to the head with full transactions, and every log
    of those blocks, read from the node."""
    head = int(str(rpc_call(rpc_url, "eth_blockNumber")), 16)
    blocks = [
        dict(rpc_call(rpc_url, "eth_getBlockByNumber", [hex(n), True], timeout=30))  # type: ignore[call-overload]
        for n in range(first_block, head + 1)
    ]
    logs = rpc_call(
        rpc_url, "eth_getLogs", [{"fromBlock": hex(first_block), "toBlock": hex(head)}], timeout=60
    )
    assert isinstance(logs, list)
    return ChainCapture(blocks, [dict(entry) for entry in logs])


def _abis() -> tuple[dict[bytes, dict[str, Any]], dict[bytes, dict[str, Any]]]:
    """Functions by 4-byte selector and events by topic 0, over the checked-in contracts' ABIs."""
    from eth_utils.abi import event_abi_to_log_topic, function_abi_to_4byte_selector

    from secureflow.ledger.artifacts import load_artifact

    functions: dict[bytes, dict[str, Any]] = {}
    events: dict[bytes, dict[str, Any]] = {}
    for name in CONTRACTS:
        for entry in load_artifact(name).abi:
            if entry.get("type") == "function":
                functions[bytes(function_abi_to_4byte_selector(entry))] = entry
            elif entry.get("type") == "event":
                events[bytes(event_abi_to_log_topic(entry))] = entry
    return functions, events


def _abi_type(entry: Mapping[str, Any]) -> str:
    """The canonical ABI type of an input (tuples spelled out)."""
    kind = str(entry["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in entry["components"]) + ")" + kind[len("tuple") :]
    return kind


def _render(value: object) -> list[str]:
    """A decoded ABI value as text: integers in decimal, bytes as hex and as printable text, strings as is."""
    if isinstance(value, bool):
        return [str(value)]
    if isinstance(value, int):
        return [str(value)]
    if isinstance(value, bytes):
        return ["0x" + value.hex(), *(run.decode() for run in _PRINTABLE.findall(value))]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _render(item)]
    return [str(value)]


def _words(data: bytes) -> list[str]:
    """Every 32-byte word of ``data`` (aligned from its start and from its end) as uint256 and int256."""
    out: list[str] = []
    for start in {0, len(data) % 32}:
        for i in range(start, len(data) - 31, 32):
            word = int.from_bytes(data[i : i + 32], "big")
            out.append(str(word))
            if word >= 2**255:
                out.append(str(word - 2**256))
    return out


def _raw(data: bytes) -> list[str]:
    return [*_words(data), *(run.decode() for run in _PRINTABLE.findall(data))]


def _decode_call(functions: Mapping[bytes, dict[str, Any]], data: bytes) -> list[str]:
    from eth_abi.abi import decode

    entry = functions.get(data[:4])
    if entry is None:
        return []
    types = [_abi_type(i) for i in entry["inputs"]]
    try:
        values = decode(types, data[4:])
    except Exception as exc:
        return [f"{entry['name']}: undecodable ({type(exc).__name__})"]
    return [entry["name"], *(t for v in values for t in _render(v))]


def _decode_log(events: Mapping[bytes, dict[str, Any]], topics: list[bytes], data: bytes) -> list[str]:
    from eth_abi.abi import decode

    entry = events.get(topics[0]) if topics else None
    if entry is None:
        return []
    indexed = [i for i in entry["inputs"] if i.get("indexed")]
    plain = [i for i in entry["inputs"] if not i.get("indexed")]
    out = [str(entry["name"])]
    try:
        for spec, topic in zip(indexed, topics[1:], strict=False):
            kind = _abi_type(spec)
            if kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("("):
                out.append("0x" + topic.hex())  # a dynamic indexed value is only its hash
            else:
                out.extend(_render(decode([kind], topic)[0]))
        out.extend(t for v in decode([_abi_type(i) for i in plain], data) for t in _render(v))
    except Exception as exc:
        out.append(f"undecodable ({type(exc).__name__})")
    return out


def _bytes(hex_text: object) -> bytes:
    text = str(hex_text or "0x")
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def chain_sinks(capture: ChainCapture) -> dict[str, str]:
    """``chain calldata`` (one line per transaction) and ``chain events`` (one line per log) as text."""
    functions, events = _abis()
    calls: list[str] = []
    for block in capture.blocks:
        for tx in block.get("transactions", []):
            data = _bytes(tx.get("input") or tx.get("data"))
            decoded = _decode_call(functions, data) if tx.get("to") else []
            calls.append(" ".join([str(tx["hash"]), *decoded, *_raw(data[4:] if tx.get("to") else data)]))
    logs: list[str] = []
    for entry in capture.logs:
        topics = [_bytes(t) for t in entry.get("topics", [])]
        data = _bytes(entry.get("data"))
        rendered = _decode_log(events, topics, data)
        raw = [t for topic in topics for t in _raw(topic)] + _raw(data)
        logs.append(" ".join([str(entry.get("transactionHash")), *rendered, *raw]))
    return {"chain calldata": "\n".join(calls), "chain events": "\n".join(logs)}


def planted_chain_captures(capture: ChainCapture, value: int, text: str) -> dict[str, ChainCapture]:
    """Copies of ``capture`` with ``value`` (an integer cell) or ``text`` (a cell's rendering) planted in one
    place each, by the sink it lands in: an extra argument word and a string in a call's calldata, a word in a
    log's data and an indexed topic."""
    word = value.to_bytes(32, "big", signed=True)
    raw = (" " + text).encode()
    string = raw.ljust(32 * ((len(raw) + 31) // 32), b"\0")
    out: dict[str, ChainCapture] = {}

    def first_call(c: ChainCapture) -> dict[str, Any]:
        return next(tx for b in c.blocks for tx in b.get("transactions", []) if tx.get("to"))

    as_word, as_string = capture.copy(), capture.copy()
    tx = first_call(as_word)
    tx["input"] = str(tx["input"]) + word.hex()
    tx = first_call(as_string)
    tx["input"] = str(tx["input"]) + string.hex()
    out["chain calldata: a word"], out["chain calldata: a string"] = as_word, as_string
    in_data, in_topic = capture.copy(), capture.copy()
    in_data.logs[0]["data"] = str(in_data.logs[0]["data"]) + word.hex()
    with_topics = next(entry for entry in in_topic.logs if len(entry.get("topics", [])) > 1)
    with_topics["topics"][1] = "0x" + word.hex()
    out["chain events: data"], out["chain events: topic"] = in_data, in_topic
    return out


# --------------------------------------------------------------------------------------------- Redis


@dataclass
class RedisMonitor:
    """The commands Redis executes that name ``prefix`` (a MONITOR connection; Redis is shared, so the rest
    is left out), kept while the ``with`` block runs. On exit a sentinel command is sent and the monitor
    reads up to it, so nothing sent before the exit is missed."""

    url: str
    prefix: str
    commands: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _error: list[BaseException] = field(default_factory=list)

    def __enter__(self) -> RedisMonitor:
        self._sentinel = f"{self.prefix}:monitor-end"
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(30), "the Redis MONITOR connection did not start"
        return self

    def _run(self) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            with client.monitor() as monitor:
                self._ready.set()
                for entry in monitor.listen():
                    command = str(entry["command"])
                    if self._sentinel in command:
                        return
                    if self.prefix in command:
                        self.commands.append(command)
        except BaseException as exc:
            self._error.append(exc)
            self._ready.set()
        finally:
            client.close()

    def __exit__(self, *exc: object) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            client.get(self._sentinel)
        finally:
            client.close()
        assert self._thread is not None
        self._thread.join(60)
        assert not self._thread.is_alive(), "the Redis MONITOR did not see its end"
        if self._error:
            raise self._error[0]

    def sinks(self) -> dict[str, str]:
        """The commands by key (``redis <key>``): what passed through each queue, heartbeat and reply list."""
        return redis_sinks(self.commands, self.prefix)


_KOMBU_BODY = re.compile(r'"body": "([A-Za-z0-9+/=]+)"')


def redis_sinks(commands: Iterable[str], prefix: str) -> dict[str, str]:
    """The commands grouped by the first word naming ``prefix`` (the key); a Celery message's base64 body
    (kombu's Redis transport) is decoded beside it."""
    import base64
    import binascii

    by_key: dict[str, list[str]] = {}
    for command in commands:
        key = next((w for w in command.split(" ") if prefix in w), prefix)
        lines = by_key.setdefault(f"redis {key}", [])
        lines.append(command)
        for body in _KOMBU_BODY.findall(command):
            try:
                lines.append(base64.b64decode(body, validate=True).decode("utf-8", errors="replace"))
            except (binascii.Error, ValueError):
                continue
    return {name: "\n".join(lines) for name, lines in by_key.items()}


# --------------------------------------------------------------------------------------------- databases


def sqlite_rows(path: Path) -> dict[str, str]:
    """Every row of every table of a SQLite file, one sink per table (``<file> <table>``)."""
    with sqlite3.connect(path) as db:
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            f"{path.name} {n}": "\n".join(
                " ".join(map(str, row))
                for row in db.execute(f'SELECT * FROM "{n}"')  # noqa: S608 - names from sqlite_master
            )
            for n in names
        }


def postgres_rows(url: str) -> dict[str, str]:
    """Every row of every table in the schema of a SQLAlchemy URL (its search_path), one sink per table."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            names = inspect(conn).get_table_names()
            return {
                f"db {n}": "\n".join(
                    " ".join(map(str, row))
                    for row in conn.execute(text(f'SELECT * FROM "{n}"'))  # noqa: S608 - names from the schema
                )
                for n in names
            }
    finally:
        engine.dispose()


def folder_files(root: Path, skip: Iterable[str] = ("data", "models", "secrets")) -> dict[str, str]:
    """Every file under ``root`` as text (``<relative path>``), except those under a top folder in ``skip``
    (a member's own data, model shares and keys)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] not in skip:
            out[str(rel)] = path.read_bytes().decode("utf-8", errors="replace")
    return out


# --------------------------------------------------------------------------------------------- logs


class LogCapture(logging.Handler):
    """Every log record of this process while the ``with`` block runs (at ``level`` and above on the root
    logger), formatted as the API's JSON log lines (`JsonFormatter`)."""

    def __init__(self, level: int = logging.DEBUG) -> None:
        super().__init__(level=level)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []
        self._lock_lines = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._lock_lines:
            self.lines.append(line)

    def __enter__(self) -> LogCapture:
        root = logging.getLogger()
        self._old_level = root.level
        root.addHandler(self)
        root.setLevel(self.level)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._old_level)

    def text(self) -> str:
        with self._lock_lines:
            return "\n".join(self.lines)


# --------------------------------------------------------------------------------------------- reports

REVEALED_BY_DESIGN: dict[str, frozenset[str]] = {
    # order statistics are cell values: each column's are revealed to its owner and to reveal_to, by design
    "table_statistics": frozenset({"min", "max", "q1", "q2", "q3", "median", "mode"}),
}
"""The allow-list: per algorithm, the fields of a column's entry in its report ({column: {field: value}})
that hold cell values by design, allowed only in the report of a party that may see that column."""


def _without(report: object, fields: frozenset[str], columns: set[str]) -> object:
    """``report`` without ``fields`` in the entries of the ``columns`` the receiver may see."""
    if not fields or not isinstance(report, dict):
        return report
    return {
        column: (
            {k: v for k, v in entry.items() if k not in fields}
            if column in columns and isinstance(entry, dict)
            else entry
        )
        for column, entry in report.items()
    }


def report_sinks(
    steps: Iterable[Any], receivers: Mapping[str, set[str]], visible: Mapping[str, set[str]]
) -> tuple[dict[str, str], list[str]]:
    """The reports a coordinator received (`StepOutcome.reports`: party -> output name -> report), one sink
    per step, output and party, with the `REVEALED_BY_DESIGN` fields of the columns that party may see
    (``visible``: party -> columns) left out; and the reports that came from a party that is not a named
    receiver of that output (``receivers``: output name -> party names)."""
    sinks: dict[str, str] = {}
    unexpected: list[str] = []
    for step in steps:
        allowed = REVEALED_BY_DESIGN.get(step.algorithm, frozenset())
        for party, reports in step.reports.items():
            for name, report in reports.items():
                where = f"step {step.seq} ({step.algorithm}) {name} from {party}"
                if party not in receivers.get(name, set()):
                    unexpected.append(where)
                sinks[where] = json.dumps(_without(report, allowed, visible.get(party, set())))
    return sinks, unexpected
