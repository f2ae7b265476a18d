"""Wall-clock time for object timestamps: the one place the test server reads the clock.

The server is an I/O shell, so it may; it takes the clock as a parameter anyway so tests can
pin timestamps.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["system_clock"]


def system_clock() -> datetime:
    return datetime.now(UTC)  # noqa: TID251 - the shell's clock, injected everywhere below it
