# The operator image: the light `deepseek-operator` package (kopf, the kubernetes client, pydantic;
# no Ray, vLLM or torch: those are the `serving` extras and live in the serving image).
#   docker build -t ghcr.io/deepseek-operator/operator:0.1.0 .
# At the repository root because the build needs pyproject.toml and both package folders.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY serving/ serving/
# No extras: the operator alone.
RUN /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/dsd --help > /dev/null

FROM python:3.11-slim
LABEL org.opencontainers.image.title="deepseek-operator" \
      org.opencontainers.image.description="Kubernetes operator for DeepSeek MoE models on KubeRay and vLLM" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/venv /opt/venv
# A numeric non-root user: Kubernetes can check `runAsNonRoot` without a passwd entry.
USER 10001:10001
# kopf's /healthz, Prometheus metrics, the admission webhook (HTTPS).
EXPOSE 8080 9090 9443
ENTRYPOINT ["dsd", "operator"]
