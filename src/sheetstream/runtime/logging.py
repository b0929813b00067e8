"""Structured logs (structlog) to stderr: key=value for people at a terminal, JSON when not a TTY."""

from __future__ import annotations

import logging
import re
import sys

import structlog

_QUERY_TOKEN = re.compile(r"([?&]token=)[^&\s\"']+")


class RedactTokens(logging.Filter):
    """Blank the `token=` of URLs in records (uvicorn logs each WebSocket's path with its query string)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message without the token; never drop it."""
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = _QUERY_TOKEN.sub(r"\1[redacted]", message), None
        return True


def configure_logging(level: str = "info") -> None:
    """Route structlog and the standard library's logging (uvicorn) to stderr at `level`."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer = (
        structlog.dev.ConsoleRenderer(colors=False) if sys.stderr.isatty() else structlog.processors.JSONRenderer()
    )
    # merge_contextvars adds what a task bound (the `source` of a watch, the `connection` of a WebSocket).
    stamp: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*stamp, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    # The standard library's records (uvicorn, libraries) get the same fields and form: one format per stream.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*stamp, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    handler.addFilter(RedactTokens())  # connection tokens never reach a log line
    logging.basicConfig(level=numeric, handlers=[handler])
