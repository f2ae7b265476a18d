"""Model source URIs: `hf://org/name@revision`, `s3://bucket/prefix`, `pvc://claim/path`, `file:///path`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast, get_args

__all__ = ["ModelSource", "parse_model_source"]

Scheme = Literal["hf", "s3", "pvc", "file"]


@dataclass(frozen=True)
class ModelSource:
    scheme: Scheme
    location: str
    """`org/name` for hf, `bucket/prefix` for s3, `claim/path` for pvc, the absolute path for file."""
    revision: str | None = None
    """Hugging Face revision after `@`; None for other schemes."""

    def with_revision(self, revision: str | None) -> ModelSource:
        """The same source at another revision (versions override the spec's revision)."""
        return ModelSource(self.scheme, self.location, revision if revision is not None else self.revision)

    def __str__(self) -> str:
        suffix = f"@{self.revision}" if self.revision else ""
        return f"{self.scheme}://{self.location}{suffix}"


def parse_model_source(uri: str) -> ModelSource:
    """Split a source URI that already matched the API's pattern (ValueError otherwise)."""
    scheme, separator, rest = uri.partition("://")
    if not separator or scheme not in get_args(Scheme):
        raise ValueError(f"{uri!r} is not an hf://, s3://, pvc:// or file:// URI")
    if scheme == "hf":
        location, _, revision = rest.partition("@")
        return ModelSource("hf", location, revision or None)
    return ModelSource(cast(Scheme, scheme), rest)
