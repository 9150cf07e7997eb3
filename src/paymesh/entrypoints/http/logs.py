"""How `paymesh serve` and `paymesh worker` log: text (the default, for a terminal) or JSON
lines (`--log-format json`, env PAYMESH_LOG_FORMAT), one object per line with the keys
`time`, `level`, `logger`, `message`, `request_id`, `payment_id` and, for a failure, `exc`.

Both carry the request id and payment id (`request_ids.RequestContextFilter`).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

import msgspec

from paymesh.entrypoints.http.request_ids import RequestContextFilter

FORMATS = ("text", "json")
ENV = "PAYMESH_LOG_FORMAT"
TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"

_encode = msgspec.json.Encoder().encode


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "payment_id": getattr(record, "payment_id", None),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        return _encode(line).decode()


def log_format(option: str | None) -> str:
    """The format asked for: the option, else the environment, else text."""
    chosen = (option or os.environ.get(ENV) or "text").lower()
    if chosen not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {chosen!r}")
    return chosen


def handler_for(fmt: str, stream: Any = None) -> logging.Handler:
    """A stream handler (stderr by default) writing `fmt`, with the request context."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter(TEXT))
    handler.addFilter(RequestContextFilter())
    return handler


def configure_logging(fmt: str | None, level: str, stream: Any = None) -> None:
    """The root logger's one handler. uvicorn's loggers propagate to it (serve passes no
    log config of its own to uvicorn beyond the level)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler_for(log_format(fmt), stream))
    root.setLevel(level.upper())
