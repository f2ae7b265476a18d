#!/usr/bin/env bash
# Run the e2e suite on a kind cluster with KubeRay v1.7.0 and this operator (needs docker, kind,
# kubectl and helm on the machine; not run in CI, which has no container engine).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cluster=${KIND_CLUSTER:-deepseek-e2e}

kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 120s
kubeconfig=$(mktemp)
kind get kubeconfig --name "$cluster" > "$kubeconfig"
export KUBECONFIG=$kubeconfig

docker build -t deepseek-operator:e2e .
docker build -t deepseek-serving:e2e -f e2e_tests/kind/Dockerfile.serving-cpu .
kind load docker-image --name "$cluster" deepseek-operator:e2e deepseek-serving:e2e

helm repo add kuberay https://ray-project.github.io/kuberay-helm/ >/dev/null
helm upgrade --install kuberay-operator kuberay/kuberay-operator --version 1.7.0 --wait
helm upgrade --install deepseek-operator charts/deepseek-operator --wait \
  --set image.repository=deepseek-operator --set image.tag=e2e --set image.pullPolicy=Never

E2E_KUBECONFIG=$kubeconfig E2E_MODEL_SOURCE=file:///models/deepseek-tiny E2E_SERVING_IMAGE=deepseek-serving:e2e \
  .venv/bin/pytest e2e_tests -v "$@"
