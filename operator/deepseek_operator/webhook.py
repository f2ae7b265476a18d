"""The validating admission webhook: the API server refuses what `dsd validate` would refuse.

`validate` is a kopf admission handler (`@kopf.on.validate`, registered by `handlers`). It runs
`validation.validate_deployment`, the function behind `dsd validate` and the reconciler, with the
architecture ConfigMap the resource names read through the API, and denies with every error as
`path: message`, one per line: exactly the lines `dsd validate` prints after the file name.

There is no mutating (defaulting) webhook on purpose: the CRD's structural schema already carries
every static default, which the API server applies on its own, and the remaining defaults depend
on the model's `config.json` and are the planner's to derive on every pass. Writing them into
stored objects would freeze today's defaults into every resource (a later operator could not
improve them) and make GitOps tools report a diff against what the user wrote.

`configure` points kopf's admission settings at the HTTPS server: kopf's `WebhookServer`
(certificate files from the chart's Secret, or a self-signed one for a local run) and, with
`managed_configuration`, a ValidatingWebhookConfiguration kopf creates and keeps current. In a
cluster the configuration names the operator's Service (`ServiceWebhookServer`): the API server
resolves no cluster DNS names in webhook URLs.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import kopf
from kubernetes.aio.client.exceptions import ApiException

from deepseek_operator.errors import FieldError, InvalidSpec
from deepseek_operator.k8s.references import read_references
from deepseek_operator.settings import WebhookSettings
from deepseek_operator.validation import validate_deployment

__all__ = ["HANDLER_ID", "ServiceWebhookServer", "admission_message", "configure", "validate"]

HANDLER_ID = "validate"
"""The handler's id: the last segment of the webhook's URL path and of its name in the configuration."""

DENIED_CODE = 422
"""HTTP code of a denial (Unprocessable Entity, as the API server's own validation answers)."""


def admission_message(errors: tuple[FieldError, ...]) -> str:
    """Every error as `path: message`, one per line (what `dsd validate` prints after the file)."""
    return "\n".join(str(error) for error in errors)


async def validate(
    *,
    body: kopf.Body,
    memo: Any,
    logger: kopf.Logger,
    old: kopf.Body | None = None,
    operation: str | None = None,
    **_: Any,
) -> None:
    """Deny a create or a spec change that `dsd validate` would reject; allow everything else.

    Metadata-only updates of an existing resource and updates during deletion are allowed as they
    are: refusing them would trap a resource that became invalid later (its ConfigMap changed)
    with its finalizers and labels.
    """
    if body.metadata.get("deletionTimestamp"):
        return
    if operation == "UPDATE" and old is not None and old.get("spec") == body.get("spec"):
        return
    namespace = body.metadata.get("namespace") or "default"
    document = copy.deepcopy(dict(body))
    try:
        context = (await read_references(memo.client, namespace, document)).architecture_context()
    except ApiException as error:
        raise kopf.AdmissionError(
            f"cannot read a ConfigMap the spec names: {error.reason}",
            code=503,
        ) from None
    try:
        validate_deployment(document, context)
    except InvalidSpec as invalid:
        logger.info("denied %s: %d error(s)", operation, len(invalid.errors), extra={"reason": "Denied"})
        raise kopf.AdmissionError(admission_message(invalid.errors), code=DENIED_CODE) from None


class ServiceWebhookServer(kopf.WebhookServer):
    """kopf's HTTPS server, announced to the API server as a Service rather than a URL."""

    def __init__(
        self, *, service_name: str, service_namespace: str, service_port: int, **options: Any
    ) -> None:
        super().__init__(**options)
        self.service = kopf.WebhookClientConfigService(
            name=service_name, namespace=service_namespace, port=service_port, path=self.path or ""
        )

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async for client_config in super().__call__(fn):
            announced = kopf.WebhookClientConfig(service=copy.deepcopy(self.service))
            if "caBundle" in client_config:
                announced["caBundle"] = client_config["caBundle"]
            yield announced


def configure(settings: kopf.OperatorSettings, config: WebhookSettings) -> None:
    """Point kopf's admission settings at the HTTPS server `config` describes."""
    options: dict[str, Any] = {
        "addr": config.addr,
        "port": config.port,
        "host": config.host,
        "certfile": config.cert_file,
        "pkeyfile": config.key_file,
        "cafile": config.ca_file,
    }
    if config.service_name:
        settings.admission.server = ServiceWebhookServer(
            service_name=config.service_name,
            service_namespace=config.service_namespace or "default",
            service_port=config.service_port,
            **options,
        )
    else:
        settings.admission.server = kopf.WebhookServer(**options)
    settings.admission.managed = config.managed_configuration or None
