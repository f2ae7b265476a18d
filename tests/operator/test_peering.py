"""Two replicas with kopf peering: the older works, the newer waits, and takes over when it stops.

Each replica is a `dsd operator` process with its own identity (`POD_ID`) and host name (the
`reportingInstance` of the Events it posts), as two pods of the chart's Deployment are.
"""

from __future__ import annotations

import copy
import signal
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client

from deepseek_operator.api.constants import GROUP, PLURAL, VERSION
from tests.api.resources import example
from tests.operator.conftest import InstantServe, eventually
from tests.operator.process import OperatorProcess


def test_one_replica_works_and_the_other_takes_over(
    kubeconfig: Path, k8s_client: Any, namespace: str, instant_serve: InstantServe, tmp_path: Path
) -> None:
    custom, core = client.CustomObjectsApi(k8s_client), client.CoreV1Api(k8s_client)
    peering = f"peering-{uuid.uuid4().hex[:6]}"
    custom.create_cluster_custom_object(
        "kopf.dev",
        "v1",
        "clusterkopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": peering}},
    )
    env = {"DSD_PEERING__NAME": peering, "DSD_PEERING__MANDATORY": "true"}

    def peers() -> set[str]:
        found = custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", peering)
        return set(found.get("status") or {})

    def reporters() -> list[str]:
        events = core.list_namespaced_event(namespace).items
        return [event.reporting_instance for event in events if event.involved_object.name == "tiny"]

    def serving(version: str) -> bool:
        found = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "tiny")
        status = found.get("status") or {}
        return status.get("phase") == "Serving" and status.get("currentVersion") == version

    first = OperatorProcess(kubeconfig, tmp_path / "a.log", env=env, hostname="replica-a")
    second = OperatorProcess(kubeconfig, tmp_path / "b.log", env=env, hostname="replica-b")
    try:
        first.start()
        eventually(lambda: peers() == {"replica-a"})
        second.start()
        eventually(lambda: peers() == {"replica-a", "replica-b"})

        # Only the older replica reconciles: every Event is its own.
        document = copy.deepcopy(example("tiny-local"))
        document["metadata"]["namespace"] = namespace
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, document)
        eventually(lambda: serving("v1"))
        assert eventually(reporters)
        assert set(reporters()) == {"replica-a"}
        # The newer one started paused (peering is mandatory) and saw an older peer: it never resumed.
        assert "Resuming operations" not in second.output

        # The older one stops (a rolling update, a drained node): the other takes over at once.
        assert first.stop(signal.SIGTERM) == 0, first.output
        eventually(lambda: peers() == {"replica-b"})
        eventually(lambda: "Resuming operations after the pause" in second.output)
        versions = [*document["spec"]["versions"], {"name": "v2", "engineArgs": {"max_num_seqs": 4}}]
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "tiny", {"spec": {"versions": versions}}
        )
        eventually(lambda: serving("v2"))
        assert "replica-b" in reporters()
        assert second.healthy()
    finally:
        first.stop()
        second.stop()
        custom.delete_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", peering)
