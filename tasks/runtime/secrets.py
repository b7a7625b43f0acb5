"""Keep access tokens out of logs, error messages and written files.

A token can reach a log line by accident (an exception that quotes a request, a library
that logs its settings), and from the log into a Prefect artifact or a bug report. The CLI
installs `install_redaction()` once; every log record created afterwards, by any logger
(Prefect's included), has the values of the token variables replaced by `REDACTED`.
"""

from __future__ import annotations

import logging
import os
import re

REDACTED = "[REDACTED]"
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN", "PREFECT_API_KEY")
# Hugging Face user/org tokens, even when they come from a file rather than the environment.
_HF_TOKEN_SHAPE = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
_MIN_SECRET_CHARS = 8  # shorter values ("1", "true") would blank out ordinary words

_installed = False


def secret_values() -> list[str]:
    """The current values of the token variables, longest first."""
    values = {os.environ.get(name, "").strip() for name in TOKEN_VARIABLES}
    return sorted((v for v in values if len(v) >= _MIN_SECRET_CHARS), key=len, reverse=True)


def redact(text: str) -> str:
    """`text` with every token value (and anything shaped like an HF token) replaced."""
    for value in secret_values():
        if value in text:
            text = text.replace(value, REDACTED)
    return _HF_TOKEN_SHAPE.sub(REDACTED, text)


def install_redaction() -> None:
    """Redact every log record from now on (idempotent).

    A record factory, not a handler filter: Prefect configures its own handlers (console,
    API) and filters on a logger do not see records that propagate from its children.
    """
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is logging's to report
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:  # handlers reuse exc_text once set
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
