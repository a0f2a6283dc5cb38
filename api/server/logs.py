"""The API's logs: one short line per event for a person (default) or one JSON object per line
(``SECUREFLOW_LOG_FORMAT=json``, ``secureflow api --log-format json``), with the request id, never a key or
a secret.

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


class TextFormatter(logging.Formatter):
    """Formats a record as one short line for a person: time, level, where, message, then any ``extra``
    fields as ``name=value`` (secrets redacted as in the JSON lines)."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        where = record.name.removeprefix("secureflow.").removesuffix(".error")  # uvicorn.error: uvicorn
        fields = {
            name: value
            for name, value in vars(record).items()
            if name not in _STANDARD and not name.startswith("_") and name != "color_message"
        }
        message = record.getMessage()
        if message == "request" and {"method", "route", "status"} <= fields.keys():  # the API's access log
            message = f"{fields.pop('method')} {fields.pop('route')} {fields.pop('status')}"
            if "duration_ms" in fields:
                message += f" in {fields.pop('duration_ms')} ms"
        line = f"{when} {record.levelname.lower():<7} {where}: {message}"
        extras = [f"{name}={_redact(name, value)}" for name, value in fields.items()]
        if extras:
            line += "  " + " ".join(extras)
        if record.exc_info and record.exc_info[0] is not None:
            line += f"  ({record.exc_info[0].__name__})"
        return line


LOG_FORMATS = ("text", "json")


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Send the ``api``, ``ledger`` and ``uvicorn`` loggers to stderr: one short line per event (``text``,
    the default) or one JSON object per line (``json``, for log collectors). Migrations and other
    libraries' chatter show only from warnings up."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}: use text or json")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # the API logs each request itself, with its id
    for name in ("alembic", "httpx", "web3", "urllib3"):  # "Running upgrade …" per migration, per request
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
