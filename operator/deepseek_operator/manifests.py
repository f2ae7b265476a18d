"""Read Kubernetes manifests from YAML files: every document, with where it came from.

GitOps repositories keep a DeepSeekDeployment next to the ConfigMaps it references, so the
offline commands (`dsd validate`, `dsd render`, `dsd plan`) read whole file sets and resolve
`configMapRef`s among them, as the operator would in the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deepseek_operator.api.constants import API_VERSION, GROUP, KIND
from deepseek_operator.errors import FieldError

__all__ = ["Document", "ManifestSet", "dump_yaml_stream", "load_manifests"]


@dataclass(frozen=True)
class Document:
    """One YAML document."""

    origin: str
    """`file.yaml` or `file.yaml#2` for the third document of a multi-document file."""
    body: dict[str, Any]
    directory: Path
    """Directory of the file, against which relative paths in the document resolve."""

    @property
    def is_deployment(self) -> bool:
        return self.body.get("kind") == KIND and str(self.body.get("apiVersion", "")).startswith(f"{GROUP}/")

    @property
    def name(self) -> str:
        return str((self.body.get("metadata") or {}).get("name", "?"))

    @property
    def namespace(self) -> str:
        return str((self.body.get("metadata") or {}).get("namespace") or "default")


@dataclass
class ManifestSet:
    """Documents read from files, and the files that could not be read."""

    documents: list[Document] = field(default_factory=list)
    unreadable: list[tuple[str, FieldError]] = field(default_factory=list)

    @property
    def deployments(self) -> list[Document]:
        return [document for document in self.documents if document.is_deployment]

    def config_map_data(self, namespace: str) -> dict[str, Mapping[str, str]]:
        """`data` of every ConfigMap in `namespace`, by name."""
        return {
            document.name: document.body.get("data") or {}
            for document in self.documents
            if document.body.get("kind") == "ConfigMap" and document.namespace == namespace
        }


def load_manifests(paths: Iterable[Path]) -> ManifestSet:
    """Read every YAML document of every file (directories: their *.yaml and *.yml files)."""
    manifests = ManifestSet()
    for path in _expand(paths):
        try:
            documents = [
                doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None
            ]
        except OSError as error:
            manifests.unreadable.append(
                (str(path), FieldError("", f"cannot read: {error.strerror or error}"))
            )
            continue
        except yaml.YAMLError as error:
            manifests.unreadable.append((str(path), FieldError("", f"not valid YAML: {error}")))
            continue
        for index, body in enumerate(documents):
            origin = str(path) if len(documents) == 1 else f"{path}#{index}"
            if not isinstance(body, dict):
                manifests.unreadable.append((origin, FieldError("", "a manifest must be a mapping")))
                continue
            if body.get("kind") == KIND and body.get("apiVersion") != API_VERSION:
                manifests.unreadable.append(
                    (
                        origin,
                        FieldError(
                            "apiVersion", f"{body.get('apiVersion')!r} is not served; use {API_VERSION}"
                        ),
                    )
                )
                continue
            manifests.documents.append(Document(origin, body, path.parent))
    return manifests


def _expand(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            files.append(path)
    return files


class _ReviewDumper(yaml.SafeDumper):
    """YAML for people reviewing a diff: no `&id` anchors, multi-line strings as `|` blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_ReviewDumper.add_representer(str, _represent_text)


def dump_yaml_stream(objects: Iterable[Mapping[str, Any]]) -> str:
    """Objects as a `---`-separated YAML stream, keys in their given order."""
    return yaml.dump_all(objects, Dumper=_ReviewDumper, sort_keys=False, width=120, allow_unicode=True)
