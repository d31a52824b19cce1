"""How Vigil prints: one formatter for every logger (Vigil's own, uvicorn's, the web framework's, Python warnings),
as text for people or as one JSON object per line for log shippers (setting ``log_format``).

The standard library's logging does the work; this module only installs one handler on the root logger and makes
every other logger hand its records to it. Records may carry fields (``extra=``); the JSON format gives each one
its own key, the text format appends them as ``name=value``. Nothing here ever sees a request's headers: the
access log (:mod:`vigil.web.access`) passes only the fields it chose.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import IO, Any

FORMATS = ("text", "json")

# The attributes every LogRecord has; anything else on a record came from ``extra=`` and is a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# uvicorn adds a coloured copy of its messages; it says nothing new.
_DROPPED = frozenset({"color_message"})
# Loggers that would otherwise print in their own format, or not at all once uvicorn is told not to set up logging.
_QUIET = ("httpx", "httpcore")
_FOREIGN = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "litestar", "py.warnings")


def _time(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record was given with ``extra=``."""
    return {
        k: v
        for k, v in vars(record).items()
        if k not in _STANDARD and k not in _DROPPED and not k.startswith("_")
    }


class Formatter(logging.Formatter):
    """``2026-07-01T09:30:00.123Z INFO vigil.web message key=value`` (text), or the same as a JSON object."""

    def __init__(self, style: str = "text") -> None:
        super().__init__()
        if style not in FORMATS:
            raise ValueError(f"log format must be one of {', '.join(FORMATS)}; got {style!r}")
        self.json = style == "json"

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        fields = fields_of(record)
        problem = self.formatException(record.exc_info) if record.exc_info else None
        if record.stack_info:
            problem = "\n".join(p for p in (problem, self.formatStack(record.stack_info)) if p)
        if self.json:
            out: dict[str, Any] = {
                "time": _time(record),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": message,
                **fields,
            }
            if problem:
                out["exception"] = problem
            return json.dumps(out, default=str, ensure_ascii=False, separators=(",", ":"))
        line = f"{_time(record)} {record.levelname} {record.name} {message}"
        shown = getattr(record, "_shown", ())  # fields the message already says
        extra = [f"{k}={_text_value(v)}" for k, v in fields.items() if v is not None and k not in shown]
        if extra:
            line += " " + " ".join(extra)
        return f"{line}\n{problem}" if problem else line


# a value made only of these is written as it is; anything else (empty, spaces, quotes, '=', a line break, any
# other character) is quoted by JSON string rules, so it cannot be misread as more fields or another line
_PLAIN = re.compile(r"[A-Za-z0-9_./:@*?&%,+~!$'()\[\]-]+")


def _text_value(value: Any) -> str:
    text = str(value)
    return text if _PLAIN.fullmatch(text) else json.dumps(text)


def configure(level: str = "info", style: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record of the process, at ``level`` and above, to ``stream`` (standard error) in ``style``.

    Replaces whatever handlers the root logger had (``basicConfig`` elsewhere) and makes uvicorn's and the
    framework's loggers pass their records up instead of printing them their own way. Returns the handler."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(Formatter(style))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _FOREIGN:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    # warnings.warn from any library: the same format, not a bare stderr line (off then on: take over even when
    # something replaced warnings.showwarning since an earlier call)
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    # httpx logs every URL it requests at INFO; outbound URLs (webhooks, sinks) can carry secrets
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return handler
