"""Kubernetes resource quantities (`80Gi`, `141G`, `512Mi`) as integers of bytes.

The CLI also accepts the `GiB`/`GB` spellings people type (`--gpu-memory 80GiB`).
"""

from __future__ import annotations

import re

__all__ = ["QUANTITY_PATTERN", "format_bytes", "parse_quantity"]

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_DECIMAL = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}

# The subset of the Kubernetes quantity grammar that makes sense for memory sizes.
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|K|M|G|T|P)?$"
_CLI_PATTERN = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]i?B?|k|kB)?\s*$")


def parse_quantity(text: str) -> int:
    """Bytes in a quantity: `80Gi` -> 85899345920, `1.5G` -> 1500000000, `80GiB` -> like `80Gi`.

    Raises ValueError with the accepted forms when `text` is not a quantity.
    """
    match = _CLI_PATTERN.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a quantity; use e.g. 80Gi, 141Gi, 96G or 512Mi")
    number, unit = match.group(1), (match.group(2) or "")
    unit = unit.removesuffix("B") if unit not in ("", "B") else ""
    multiplier = _BINARY.get(unit) or _DECIMAL.get(unit)
    if multiplier is None:
        raise ValueError(f"{text!r}: unknown unit {unit!r}; use Ki, Mi, Gi, Ti, K, M, G or T")
    return round(float(number) * multiplier)


def format_bytes(value: float) -> str:
    """`85899345920` -> `80.0 GiB`: the binary unit people read GPU memory in."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"
