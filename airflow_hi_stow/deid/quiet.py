"""Keep patient data out of logs: pydicom's log records and warnings quote the values they complain about.

``withheld_values()`` routes both through a filter that keeps what was wrong and drops the value: the record's text is
cut at the first colon or quote, and warnings raised while de-identifying are re-logged the same way.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("airflow_hi_stow.deid")
_VALUE_START = re.compile(r"""[:'"<=\[(]""")


def redact(message: str) -> str:
    """The part of a library message before anything that could be a value."""
    head = _VALUE_START.split(message, maxsplit=1)[0].strip()
    return f"{head} (value withheld)" if head != message.strip() else head


class DropValues(logging.Filter):
    """A logging filter that rewrites a record's message to its value-free head."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        record.exc_info = None
        record.exc_text = None
        return True


_FILTER = DropValues()


def install_log_filter() -> None:
    """Put the filter on pydicom's logger and its handlers (idempotent); done once per process."""
    pydicom_logger = logging.getLogger("pydicom")
    if _FILTER not in pydicom_logger.filters:
        pydicom_logger.addFilter(_FILTER)
    for handler in pydicom_logger.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


@contextmanager
def withheld_values() -> Iterator[None]:
    """Within: pydicom's log records are redacted, and warnings are caught and logged redacted at WARNING."""
    install_log_filter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for message, count in Counter(redact(str(w.message)) for w in caught).items():
        logger.warning("pydicom warned %d time(s): %s", count, message)
