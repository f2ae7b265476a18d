"""``python -m deepseek_operator.testing up``: the test environment for a person with kubectl.

Starts the API server (and, with ``--kuberay``, the KubeRay stand-in on an embedded Ray), writes
a kubeconfig, prints how to use it, and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

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
    up.add_argument("--no-kuberay-crds", action="store_true", help="do not install KubeRay's CRDs")
    up.add_argument("--kuberay", action="store_true", help="also run the KubeRay stand-in on a local Ray")
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
        await stop.wait()
    await server.stop_async()


def _kuberay(kubeconfig: Path) -> contextlib.ExitStack:
    from deepseek_operator.testing.kuberay import KubeRayStandIn
    from deepseek_operator.testing.serve_backend import RayServeBackend

    stack = contextlib.ExitStack()
    backend = stack.enter_context(RayServeBackend())
    stack.enter_context(KubeRayStandIn(kubeconfig, backend))
    return stack


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "up":
        asyncio.run(_up(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
