"""Structured JSON logs: one JSON object per line, with the request id, never a key or a secret.

Values of fields whose name suggests a secret (``authorization``, ``key``,
``password``, ``token``, ``secret``) are replaced by ``***`` before writing.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

_SECRET_WORDS = ("authorization", "key", "password", "token", "secret")
_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def _redact(name: str, value: Any) -> Any:
    return "***" if any(word in name.lower() for word in _SECRET_WORDS) else value


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = _redact(name, value)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Send the ``api``, ``ledger`` and ``uvicorn`` loggers to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # the API logs each request itself, with its id
