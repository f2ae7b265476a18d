"""A real but trivial Serve application for the KubeRay stand-in's tests (serveConfigV2 imports it)."""

from __future__ import annotations

from ray import serve
from ray.serve import Application
from starlette.requests import Request


@serve.deployment(ray_actor_options={"num_cpus": 0})
class Echo:
    def __init__(self, text: str) -> None:
        self.text = text

    async def __call__(self, request: Request) -> str:
        return self.text


def build(args: dict[str, str]) -> Application:
    """Application builder, as ``import_path: tests.testing.serve_echo:build`` with ``args``."""
    return Echo.bind(args.get("text", "hello"))
