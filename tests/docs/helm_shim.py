"""`helm` for the docs test: the real Helm engine (helm-sdkpy, Helm's Go code as a library) behind
the command line the docs use, since no `helm` binary is installed here.

Supported, as `helm` spells them: `install NAME CHART`, `upgrade [--install] NAME CHART`,
`uninstall NAME`, `status NAME`, `lint CHART`, with `-n/--namespace`, `--create-namespace`,
`--set key.path=value` (repeatable; values parsed as YAML scalars), `-f/--values FILE`
(repeatable), `--reuse-values`, `--wait` and `--timeout` (accepted; nothing runs pods here).
Anything else exits 2 naming what is missing, so a doc cannot silently rely on it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import yaml

USAGE_ERROR = 2


def _set(values: dict[str, Any], dotted: str, raw: str) -> None:
    *parents, last = dotted.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(raw) if raw != "" else ""


def _merge(into: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def parse(argv: list[str]) -> tuple[str, list[str], dict[str, Any]]:
    """(command, positional arguments, options) of a helm command line."""
    command, rest = argv[0], argv[1:]
    positional: list[str] = []
    options: dict[str, Any] = {"namespace": "default", "values": {}, "flags": set()}
    index = 0
    while index < len(rest):
        arg = rest[index]
        name, _, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        takes_value = name in ("-n", "--namespace", "--set", "-f", "--values", "--timeout")
        if takes_value and not inline:
            index += 1
            inline = rest[index]
        if name in ("-n", "--namespace"):
            options["namespace"] = inline
        elif name == "--set":
            key, _, raw = inline.partition("=")
            _set(options["values"], key, raw)
        elif name in ("-f", "--values"):
            with open(inline) as handle:
                _merge(options["values"], yaml.safe_load(handle) or {})
        elif name == "--timeout":
            pass
        elif name in ("--create-namespace", "--install", "--wait", "--reuse-values", "--atomic"):
            options["flags"].add(name)
        elif name.startswith("-"):
            raise SystemExit(f"helm (test shim): unsupported option {arg}")
        else:
            positional.append(arg)
        index += 1
    return command, positional, options


def main(argv: list[str]) -> int:
    import helm_sdkpy as helm

    if not argv:
        print("helm (test shim): a command is needed", file=sys.stderr)
        return USAGE_ERROR
    command, positional, options = parse(argv)
    config = helm.Configuration(namespace=options["namespace"], kubeconfig=os.environ["KUBECONFIG"])
    flags = options["flags"]
    if command == "install" and len(positional) == 2:
        name, chart = positional
        release = asyncio.run(
            helm.Install(config).run(
                name,
                chart,
                values=options["values"],
                create_namespace="--create-namespace" in flags,
                wait=False,
            )
        )
    elif command == "upgrade" and len(positional) == 2:
        name, chart = positional
        release = asyncio.run(
            helm.Upgrade(config).run(
                name,
                chart,
                values=options["values"],
                install="--install" in flags,
                create_namespace="--create-namespace" in flags,
                reuse_values="--reuse-values" in flags,
                wait=False,
            )
        )
    elif command == "uninstall" and len(positional) == 1:
        asyncio.run(helm.Uninstall(config).run(positional[0], wait=False))
        print(f'release "{positional[0]}" uninstalled')
        return 0
    elif command == "status" and len(positional) == 1:
        release = asyncio.run(helm.Status(config).run(positional[0]))
    elif command == "lint" and len(positional) == 1:
        result = asyncio.run(helm.Lint(config).run(positional[0]))
        for message in result.get("Messages") or []:
            print(message)
        return 1 if result.get("Errors") else 0
    else:
        print(f"helm (test shim): unsupported command: helm {' '.join(argv)}", file=sys.stderr)
        return USAGE_ERROR
    info = release.get("info") or {}
    print(f"NAME: {release.get('name')}\nNAMESPACE: {release.get('namespace')}\nSTATUS: {info.get('status')}")
    print(f"REVISION: {release.get('version')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
