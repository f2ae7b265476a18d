"""The resource types the test API server serves: built-in ones as data, and one per served CRD version.

A ``ResourceType`` holds everything routing, discovery, validation and patching need to know about
one ``group/version/plural``; ``Registry`` answers discovery and URL lookups and follows CRDs as
they are created, updated and deleted.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUILTINS", "CRD_RESOURCE", "Registry", "ResourceType", "ScaleSpec"]

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

# Strategic-merge-patch (and server-side apply) list keys of the core types, by normalized path.
_POD_SPEC_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "containers[].env": "name",
    "initContainers[].env": "name",
    "containers[].ports": "containerPort",
    "initContainers[].ports": "containerPort",
    "containers[].volumeMounts": "mountPath",
    "initContainers[].volumeMounts": "mountPath",
    "volumes": "name",
    "imagePullSecrets": "name",
}
_META_KEYS = {"metadata.ownerReferences": "uid", "status.conditions": "type"}


def _under(prefix: str, keys: Mapping[str, str]) -> dict[str, str]:
    return {f"{prefix}.{path}": key for path, key in keys.items()}


_POD_KEYS = {**_META_KEYS, **_under("spec", _POD_SPEC_KEYS)}
_WORKLOAD_KEYS = {**_META_KEYS, **_under("spec.template.spec", _POD_SPEC_KEYS)}
_SERVICE_KEYS = {**_META_KEYS, "spec.ports": "port"}


@dataclass(frozen=True)
class ScaleSpec:
    """A CRD's ``subresources.scale``: JSON paths (``.spec.replicas``) of the replica fields."""

    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str = ""


@dataclass(frozen=True)
class ResourceType:
    """One served ``group/version/plural`` and how the server treats its objects."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status: bool = False  # has a status subresource: spec and status are written separately
    generation: bool = False  # metadata.generation counts spec changes
    scale: ScaleSpec | None = None
    schema: Mapping[str, Any] | None = None  # openAPIV3Schema of a CRD version
    crd: str = ""  # name of the CRD that serves it; empty for built-ins
    field_labels: tuple[str, ...] = ()  # field selectors beyond metadata.name/namespace
    merge_keys: Mapping[str, str] = field(default_factory=dict)  # SMP/SSA list keys by path
    atomic_maps: frozenset[str] = frozenset()  # built-in maps replaced whole by apply (map-type atomic)
    verbs: tuple[str, ...] = VERBS
    singular: str = ""
    printer_columns: tuple[Mapping[str, Any], ...] = ()  # a CRD version's additionalPrinterColumns

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def key(self) -> str:
        """Storage key: one store per group/plural, whatever version it is read through."""
        return f"{self.group}/{self.plural}"

    @property
    def qualified_kind(self) -> str:
        """``Kind.group`` as Status messages name it (``RayService.ray.io``)."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def qualified_resource(self) -> str:
        """``plural.group`` as NotFound/AlreadyExists messages name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def discovery(self) -> dict[str, Any]:
        """This type's ``APIResource`` entries (itself, then its subresources)."""
        entries: list[dict[str, Any]] = [
            {
                "name": self.plural,
                "singularName": self.singular or self.kind.lower(),
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": list(self.verbs),
                **({"shortNames": list(self.short_names)} if self.short_names else {}),
                **({"categories": list(self.categories)} if self.categories else {}),
            }
        ]
        if self.status:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if self.scale:
            entries.append(
                {
                    "name": f"{self.plural}/scale",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
                }
            )
        return {"resources": entries}


def _core(kind: str, plural: str, **kw: Any) -> ResourceType:
    return ResourceType("", "v1", kind, plural, **kw)


BUILTINS: tuple[ResourceType, ...] = (
    _core(
        "Namespace",
        "namespaces",
        namespaced=False,
        short_names=("ns",),
        status=True,
        field_labels=("status.phase",),
    ),
    _core("ConfigMap", "configmaps", short_names=("cm",)),
    _core("Secret", "secrets", field_labels=("type",)),
    _core(
        "Service",
        "services",
        short_names=("svc",),
        status=True,
        merge_keys=_SERVICE_KEYS,
        # core/v1 ServiceSpec.selector is `x-kubernetes-map-type: atomic`: an apply replaces it.
        atomic_maps=frozenset({"spec.selector"}),
        categories=("all",),
    ),
    _core("ServiceAccount", "serviceaccounts", short_names=("sa",)),
    _core(
        "Event",
        "events",
        short_names=("ev",),
        field_labels=(
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ),
    ),
    _core(
        "Pod",
        "pods",
        short_names=("po",),
        status=True,
        categories=("all",),
        merge_keys=_POD_KEYS,
        field_labels=(
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
        ),
    ),
    _core("Endpoints", "endpoints", short_names=("ep",)),
    _core("Node", "nodes", namespaced=False, short_names=("no",), status=True),
    _core("PersistentVolumeClaim", "persistentvolumeclaims", short_names=("pvc",), status=True),
    *(
        ResourceType(
            "apps",
            "v1",
            kind,
            plural,
            short_names=(short,),
            status=True,
            generation=True,
            categories=("all",),
            merge_keys=_WORKLOAD_KEYS,
        )
        for kind, plural, short in (
            ("Deployment", "deployments", "deploy"),
            ("StatefulSet", "statefulsets", "sts"),
            ("ReplicaSet", "replicasets", "rs"),
            ("DaemonSet", "daemonsets", "ds"),
        )
    ),
    ResourceType("batch", "v1", "Job", "jobs", status=True, generation=True, merge_keys=_WORKLOAD_KEYS),
    ResourceType("batch", "v1", "CronJob", "cronjobs", short_names=("cj",), status=True, generation=True),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases"),
    ResourceType(
        "events.k8s.io", "v1", "Event", "events", short_names=("ev",), field_labels=("reason", "type")
    ),
    ResourceType("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
    ResourceType(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        short_names=("pdb",),
        status=True,
        generation=True,
    ),
    ResourceType(
        "networking.k8s.io", "v1", "Ingress", "ingresses", short_names=("ing",), status=True, generation=True
    ),
    ResourceType(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        short_names=("netpol",),
        generation=True,
    ),
    ResourceType(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        short_names=("hpa",),
        status=True,
    ),
    *(
        ResourceType("rbac.authorization.k8s.io", "v1", kind, plural, namespaced=namespaced)
        for kind, plural, namespaced in (
            ("Role", "roles", True),
            ("RoleBinding", "rolebindings", True),
            ("ClusterRole", "clusterroles", False),
            ("ClusterRoleBinding", "clusterrolebindings", False),
        )
    ),
    *(
        ResourceType("admissionregistration.k8s.io", "v1", kind, plural, namespaced=False, generation=True)
        for kind, plural in (
            ("ValidatingWebhookConfiguration", "validatingwebhookconfigurations"),
            ("MutatingWebhookConfiguration", "mutatingwebhookconfigurations"),
        )
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        namespaced=False,
        verbs=("create",),
    ),
)
CRD_RESOURCE = ResourceType(
    "apiextensions.k8s.io",
    "v1",
    "CustomResourceDefinition",
    "customresourcedefinitions",
    namespaced=False,
    short_names=("crd", "crds"),
    status=True,
    generation=True,
)


class Registry:
    """Served resource types by group/version/plural, following the CRDs in the store."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rt in (*BUILTINS, CRD_RESOURCE):
            self._add(rt)

    def _add(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._types.values())

    def of_key(self, key: str) -> list[ResourceType]:
        return [rt for rt in self._types.values() if rt.key == key]

    def groups(self) -> dict[str, list[str]]:
        """Group name -> served versions, preferred (first listed in the CRD, or the built-in) first."""
        out: dict[str, list[str]] = {}
        for rt in self._types.values():
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._types.values() if rt.group == group and rt.version == version]

    def apply_crd(self, crd: Mapping[str, Any]) -> None:
        """Serve (or re-serve) every served version of a CRD."""
        self.remove_crd(str(crd["metadata"]["name"]))
        spec = crd["spec"]
        names = spec["names"]
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            subresources = version.get("subresources") or {}
            scale = subresources.get("scale")
            self._add(
                ResourceType(
                    group=spec["group"],
                    version=version["name"],
                    kind=names["kind"],
                    plural=names["plural"],
                    singular=names.get("singular", names["kind"].lower()),
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    short_names=tuple(names.get("shortNames") or ()),
                    categories=tuple(names.get("categories") or ()),
                    status="status" in subresources,
                    generation=True,
                    scale=ScaleSpec(
                        scale["specReplicasPath"],
                        scale["statusReplicasPath"],
                        scale.get("labelSelectorPath", ""),
                    )
                    if scale
                    else None,
                    schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                    crd=str(crd["metadata"]["name"]),
                    field_labels=tuple(
                        f.get("jsonPath", "").lstrip(".") for f in version.get("selectableFields") or []
                    ),
                    printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                )
            )

    def remove_crd(self, name: str) -> None:
        for k in [k for k, rt in self._types.items() if rt.crd == name]:
            del self._types[k]
