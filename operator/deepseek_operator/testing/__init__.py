"""The test environment: a stateful Kubernetes API server and a KubeRay stand-in (tests and e2e only).

No product module imports this package; it exists because no kube-apiserver, kind or Docker can
run where our tests run, yet the operator must be exercised through real clients over HTTP.
"""
