"""``python -m deepseek_operator.testing up``: the test environment for a person with kubectl.

Starts the API server (and, with ``--kuberay``, the KubeRay stand-in on an embedded Ray; with
``--gateway``, the Gateway API CRDs, the ``deepseek-testing`` GatewayClass and the Gateway stand-in
on a real HAProxy), writes a kubeconfig, prints how to use it, and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from deepseek_operator.crdgen import render_crd, render_peering_crds
from deepseek_operator.testing.kuberay import find_kuberay_crds
from deepseek_operator.testing.server import ApiServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deepseek_operator.testing")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run the test API server (and the KubeRay stand-in) until Ctrl-C")
    up.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    up.add_argument(
        "--kubeconfig", type=Path, default=Path(".cache/testing/kubeconfig"), help="where to write it"
    )
    up.add_argument("--crds", type=Path, nargs="*", default=[], help="CRD YAML files or folders to install")
    up.add_argument(
        "--no-project-crds",
        action="store_true",
        help="do not install DeepSeekDeployment's CRD and kopf's peering CRDs (installed by default)",
    )
    up.add_argument("--no-kuberay-crds", action="store_true", help="do not install KubeRay's CRDs")
    up.add_argument("--kuberay", action="store_true", help="also run the KubeRay stand-in on a local Ray")
    up.add_argument(
        "--gateway",
        action="store_true",
        help="also install the Gateway API CRDs and run the Gateway stand-in (HAProxy) for GatewayClass "
        "deepseek-testing",
    )
    return parser


def _crd_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    return files


async def _up(args: argparse.Namespace) -> None:
    server = ApiServer(port=args.port)
    await server.start_async()
    crds = list(args.crds)
    kuberay_crds = None if args.no_kuberay_crds else find_kuberay_crds()
    if kuberay_crds is not None:
        crds.append(kuberay_crds)
    names = server.install_crds(_crd_files(crds))
    if not args.no_project_crds:
        names += server.install_crd_objects([render_crd(), *render_peering_crds()])
    kubeconfig = server.write_kubeconfig(args.kubeconfig.resolve())
    print(f"API server: {server.url}", flush=True)
    print(f"CRDs: {', '.join(names) or 'none'}", flush=True)
    print(f"export KUBECONFIG={kubeconfig}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signals() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

    on_signals()
    async with contextlib.AsyncExitStack() as stack:
        if args.kuberay:
            stack.enter_context(await asyncio.to_thread(_kuberay, kubeconfig))
            on_signals()  # Ray installs a SIGTERM handler that exits at once; shut down cleanly instead
            print("KubeRay stand-in: running on a local Ray", flush=True)
        if args.gateway:
            from deepseek_operator.testing.gateway import (
                GATEWAY_CLASS,
                PORTS_ANNOTATION,
                install_gateway_crds,
            )

            print(f"CRDs: {', '.join(install_gateway_crds(server))}", flush=True)
            stack.enter_context(await asyncio.to_thread(_gateway, kubeconfig))
            print(
                f"Gateway stand-in: GatewayClass {GATEWAY_CLASS}; a Gateway listens on its status address, "
                f"at the local port its {PORTS_ANNOTATION} annotation maps the listener's port to",
                flush=True,
            )
        await stop.wait()
    await server.stop_async()


def _kuberay(kubeconfig: Path) -> contextlib.ExitStack:
    from deepseek_operator.testing.kuberay import KubeRayStandIn
    from deepseek_operator.testing.serve_backend import RayServeBackend

    stack = contextlib.ExitStack()
    backend = stack.enter_context(RayServeBackend())
    stack.enter_context(KubeRayStandIn(kubeconfig, backend))
    return stack


def _gateway(kubeconfig: Path) -> contextlib.ExitStack:
    from kubernetes import client, config

    from deepseek_operator.testing.gateway import GatewayStandIn, gateway_class

    api_client = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        custom = client.CustomObjectsApi(api_client)
        custom.create_cluster_custom_object(
            "gateway.networking.k8s.io", "v1", "gatewayclasses", gateway_class()
        )
    except client.ApiException as err:
        if err.status != 409:
            raise
    finally:
        api_client.close()
    stack = contextlib.ExitStack()
    stack.enter_context(GatewayStandIn(kubeconfig))
    return stack


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        asyncio.run(_up(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
