"""The operator's error taxonomy (STYLE.md rule 11).

Domain errors stay free of kopf: the handlers map `InvalidSpec` and `PlanInfeasible` to
`kopf.PermanentError` (no retry, a Warning event, `Degraded`), and `NotReady` to
`kopf.TemporaryError`. The CLI prints the same objects, so `dsd validate` and the admission
webhook say exactly the same words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class FieldError:
    """One problem with one field of a resource.

    `path` is the field's location as `kubectl explain` spells it, with list indices,
    e.g. `spec.versions[1].engineArgs.tensor_parallel_size`.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class DeepSeekOperatorError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidSpec(DeepSeekOperatorError):
    """The resource is wrong in ways the user must fix; carries every error found, not just the first."""

    def __init__(self, errors: Sequence[FieldError], *, source: str = "") -> None:
        if not errors:
            raise ValueError("InvalidSpec needs at least one FieldError")
        self.errors: tuple[FieldError, ...] = tuple(errors)
        self.source = source
        super().__init__(self.summary())

    def summary(self) -> str:
        """All errors on one line each, prefixed by the source when known."""
        prefix = f"{self.source}: " if self.source else ""
        return "\n".join(f"{prefix}{error}" for error in self.errors)

    def __str__(self) -> str:
        return self.summary()


class PlanInfeasible(InvalidSpec):
    """No group shape fits the model on the given nodes; says by how much and what would fit.

    An `InvalidSpec` too: the user must change the resource. Surfaced as `Degraded` with reason
    `PlanInfeasible`, not as a crash.
    """


class ModelConfigError(DeepSeekOperatorError):
    """A model `config.json` is unreadable or not a DeepSeek MoE architecture.

    `problems` pairs a `config.json` key (empty for the document as a whole) with what is wrong,
    so the caller can place each one under the field the config came from.
    """

    def __init__(self, problems: Iterable[tuple[str, str]], *, origin: str) -> None:
        self.problems = tuple(problems)
        self.origin = origin
        super().__init__(f"{origin}: " + "; ".join(_join_key(k, m) for k, m in self.problems))


def _join_key(key: str, message: str) -> str:
    return f"{key}: {message}" if key else message
