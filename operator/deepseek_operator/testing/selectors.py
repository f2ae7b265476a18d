"""Label and field selectors, parsed and matched as ``k8s.io/apimachinery/pkg/labels`` and ``fields`` do."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FieldSelector", "LabelSelector", "SelectorError"]


class SelectorError(ValueError):
    """An unparsable selector, or a field label the resource does not support (400 BadRequest)."""


@dataclass(frozen=True)
class _Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.op:
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case "!":
                return not present
            case "gt" | "lt":
                try:
                    number, bound = int(value or ""), int(self.values[0])
                except ValueError:
                    return False
                return number > bound if self.op == "gt" else number < bound
        return False


_TOKEN = re.compile(
    r"\s*(?:(?P<set>[A-Za-z0-9_./-]+)\s+(?P<setop>in|notin)\s*\((?P<vals>[^)]*)\)"
    r"|(?P<not>!)\s*(?P<nkey>[A-Za-z0-9_./-]+)"
    r"|(?P<key>[A-Za-z0-9_./-]+)\s*(?:(?P<op>==|!=|=|>|<)\s*(?P<val>[A-Za-z0-9_.-]*))?)\s*(?:,|$)"
)


class LabelSelector:
    """``a=b,c!=d,e in (f,g),h notin (i),j,!k`` (and ``>``/``<``)."""

    def __init__(self, text: str) -> None:
        self.requirements = self._parse(text or "")

    @staticmethod
    def _parse(text: str) -> list[_Requirement]:
        out: list[_Requirement] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise SelectorError(f"unable to parse requirement: {text[pos:]!r}")
            if m.group("set"):
                values = tuple(v.strip() for v in m.group("vals").split(",") if v.strip())
                out.append(_Requirement(m.group("set"), m.group("setop"), values))
            elif m.group("not"):
                out.append(_Requirement(m.group("nkey"), "!"))
            elif m.group("op"):
                op = {"==": "=", ">": "gt", "<": "lt"}.get(m.group("op"), m.group("op"))
                out.append(_Requirement(m.group("key"), op, (m.group("val"),)))
            else:
                out.append(_Requirement(m.group("key"), "exists"))
            pos = m.end()
        return out

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)


class FieldSelector:
    """``metadata.name=x,status.phase!=Running``: equality only, on the labels a type supports."""

    def __init__(self, text: str, supported: tuple[str, ...]) -> None:
        self.terms: list[tuple[str, bool, str]] = []
        allowed = {"metadata.name", "metadata.namespace", *supported}
        for part in filter(None, (p.strip() for p in (text or "").split(","))):
            m = re.fullmatch(r"([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*)", part)
            if not m:
                raise SelectorError(f"invalid selector: {part!r}; can't understand {part!r}")
            name, op, value = m.groups()
            if name not in allowed:
                raise SelectorError(f"field label not supported: {name}")
            self.terms.append((name, op == "!=", value))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for path, negate, wanted in self.terms:
            node: Any = obj
            for part in path.split("."):
                node = node.get(part) if isinstance(node, Mapping) else None
            actual = "" if node is None else str(node).lower() if isinstance(node, bool) else str(node)
            if (actual == wanted) == negate:
                return False
        return True
