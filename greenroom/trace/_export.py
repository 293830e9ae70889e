"""Where spans go besides the trace store: the exporter protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from greenroom.trace._span import Span

__all__ = ["SpanExporter"]


class SpanExporter(Protocol):
    """Receives every batch of spans a trace store writes, already redacted.

    ``export`` is called in the store's flush task, after the batch is
    committed; it should hand the spans on quickly (queue them) rather than
    do network I/O itself. An exception it raises is logged and counted, and
    the store carries on.
    """

    def export(self, spans: Sequence[Span]) -> None:
        """Take a batch of finished, redacted spans."""
        ...
