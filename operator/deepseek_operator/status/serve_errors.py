"""The root cause of a Ray Serve deploy failure, as one bounded line (pure).

KubeRay copies Ray Serve's status into a RayService's `status.activeServiceStatus` /
`pendingServiceStatus`: per application (`applicationStatuses[app]`) a `status` and a `message`,
and per deployment (`serveDeploymentStatuses[name]`) the same. When a version fails to deploy those
messages are whole tracebacks, thousands of characters long, whose cause is the last line; put into
a condition or an Event (cut at 1,024 characters) the cause is lost. The shapes, from Ray 2.60
(`ray/serve/_private/application_state.py`, `deployment_state.py`; real samples in
`tests/status/serve_errors/`):

- the application builder raised (`build_app`: bad `ServingArgs`, an engine argument Ray Serve LLM
  does not know): the application's message is
  `Deploying app 'x' failed with exception:` + the controller's traceback, which ends in Ray's
  `RayTaskError(RuntimeError): ray::build_serve_application() …` whose own frames end in
  `RuntimeError: Traceback (most recent call last):`, the builder's traceback, ending in the cause,
  e.g. `ValueError: Unknown engine argument: max_num_seq`;
- a replica failed to start (the engine refused its configuration, a missing API key): the
  application says only `Failed to update the deployments ['engine-ranks'].`, and the deployment's
  message is `The deployment failed to start 3 times in a row. … Error:` + `ray::ServeReplica:…`
  frames + `RuntimeError: Traceback (most recent call last):` + the constructor's traceback, ending
  in the cause, e.g. `RuntimeError: apiKeyEnv names 'KEY', which is unset or empty …`.

So the root error is the exception line ending the innermost traceback: the last exception line
that does not itself open a traceback (Ray's wrappers do), with the lines of a multi-line exception
message after it (pydantic's field errors). Without any traceback it is the last unindented line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["FAILED_STATUSES", "MAX_ROOT_ERROR_LENGTH", "application_root_error", "root_error"]

MAX_ROOT_ERROR_LENGTH: Final = 400
"""Characters: several applications' root errors still fit in one Event message (1,024)."""

FAILED_STATUSES: Final = frozenset({"DEPLOY_FAILED", "UNHEALTHY"})
"""Ray Serve application and deployment statuses that mean "failed"."""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TRACEBACK = "Traceback (most recent call last):"
_CHAINED = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_QUALIFIED_NAME = re.compile(r"^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*(?:\([\w.]+\))?(?::|$))")
_PYDANTIC_DETAIL = re.compile(r"\s*\[type=\w+, input_value=(?P<value>.*), input_type=\w+\]$")
_PYDANTIC_HELP = "For further information visit"


def root_error(message: str, *, limit: int = MAX_ROOT_ERROR_LENGTH) -> str:
    """The root cause of a Ray Serve failure message, on one line of at most `limit` characters.

    Parameters:
        message: an application's or a deployment's `message` from a RayService status.
        limit: the longest result; longer ones keep their start and end around an ellipsis.

    Returns:
        The innermost exception line without its module path, e.g.
        `ValueError: Unknown engine argument: max_num_seq`, followed by the rest of a multi-line
        exception message (`; field: problem (got value)`); or the last non-empty line of a message
        without a traceback; `""` for an empty message.
    """
    lines = _ANSI.sub("", message).splitlines()
    found = _exception_lines(lines)
    if found:
        text = _exception_text(lines, found[-1])
    else:
        filled = [line for line in lines if line.strip()]
        text = next(
            (line for line in reversed(filled) if not line[:1].isspace()), filled[-1] if filled else ""
        )
    return _bounded(" ".join(text.split()), limit)


def application_root_error(application: Mapping[str, Any], *, limit: int = MAX_ROOT_ERROR_LENGTH) -> str:
    """The root cause of one failed entry of a RayService's `applicationStatuses`.

    Prefers the messages of its failed deployments: when a replica fails to start, the
    application's own message only names the deployment. Distinct root errors are joined with
    `; ` and the whole is bounded by `limit`.
    """
    deployments = application.get("serveDeploymentStatuses") or {}
    messages = [
        str(deployment.get("message"))
        for _, deployment in sorted(deployments.items())
        if isinstance(deployment, Mapping)
        and deployment.get("status") in FAILED_STATUSES
        and deployment.get("message")
    ]
    if not messages:
        messages = [str(application.get("message") or application.get("status") or "")]
    roots = list(dict.fromkeys(root_error(message, limit=limit) for message in messages))
    return _bounded("; ".join(roots), limit)


def _exception_lines(lines: list[str]) -> list[int]:
    """Indices of the lines ending a traceback (the first unindented line after its frames),
    leaving out those that open a traceback themselves (Ray's `RuntimeError: Traceback …`)."""
    found: list[int] = []
    index = 0
    while index < len(lines):
        opens = _TRACEBACK in lines[index]
        index += 1
        if not opens:
            continue
        while index < len(lines) and lines[index][:1].isspace():
            index += 1
        if index < len(lines) and lines[index].strip() and _TRACEBACK not in lines[index]:
            found.append(index)
    return found


def _exception_text(lines: list[str], start: int) -> str:
    """The exception line at `start` and the rest of its message, as `head; field: problem; …`."""
    pieces = [_QUALIFIED_NAME.sub("", lines[start].strip())]
    label: str | None = None
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped or _TRACEBACK in line or stripped.startswith(_CHAINED):
            break
        if stripped.startswith(_PYDANTIC_HELP):
            continue
        stripped = _PYDANTIC_DETAIL.sub(lambda match: f" (got {match['value']})", stripped)
        if line[:1].isspace() and label is not None:
            pieces[-1] = f"{label}: {stripped}"
            label = None
        else:
            pieces.append(stripped)
            label = stripped if not line[:1].isspace() else None
    return "; ".join(pieces)


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    tail = max(limit // 4, 1)
    return f"{text[: limit - tail - 3].rstrip()} … {text[-tail:].lstrip()}"
