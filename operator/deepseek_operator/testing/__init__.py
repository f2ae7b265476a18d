"""The test environment: a Kubernetes API server, KubeRay and Gateway stand-ins, Prometheus (tests, e2e).

No product module imports this package (only `dsd bench apiserver|reconcile` drive it), and the
operator's wheel leaves it out: it is the distribution `deepseek-operator-testing`
(`operator/testing-env`, the `testing` extra). It exists because no kube-apiserver, kind or Docker can
run where our tests run, yet the operator must be exercised through real clients over HTTP.

Entry points (import the module you need; this package imports nothing on its own):

- ``server.ApiServer``: ``with ApiServer() as server: server.write_kubeconfig(path)``; every real
  client (kubectl, the kubernetes client, kopf, Helm's client-go) then works unchanged.
- ``kuberay.KubeRayStandIn`` with ``serve_backend.RayServeBackend``: RayServices deployed on a
  local Ray Serve, status written as KubeRay v1.7 does.
- ``gateway.GatewayStandIn``: Gateways and HTTPRoutes (the vendored Gateway API v1 CRDs,
  ``crds/gateway-api``) served by a real HAProxy, traffic split by the routes' weights, status
  written as a Gateway implementation does; ``gateway.wait_for_gateway_url`` finds a Gateway.
- ``prometheus.PrometheusServer``: a real Prometheus (Debian package) scraping given targets.
- ``pytest_plugin``: fixtures ``apiserver``, ``kubeconfig``, ``kubeconfig_env``, ``k8s_client``,
  ``namespace``, ``kuberay_crds``, ``kuberay``, ``gateway_crds``, ``gateway``, ``prometheus``.
- ``python -m deepseek_operator.testing up [--kuberay] [--gateway] [--crds DIR]``: the same for a
  person.
- ``structural.check_structural``, ``openapi.validate_custom_resource``, ``cel``: the CRD schema
  rules, custom resource validation (pruning, defaults, OpenAPI, CEL) of a real server.

Where the server differs from a real kube-apiserver (deliberately, or not yet):

- no authentication or authorization (every request is allowed; SelfSubjectAccessReview says so),
  no admission webhooks, no API priority and fairness, plain HTTP;
- no controllers besides garbage collection and namespace finalization: Deployments, Pods,
  Services, Jobs are stored as data (no ReplicaSets or Pods are created, no endpoints, no
  scheduling), and status changes only when a client writes it;
- custom resources are not converted between versions: objects are stored as written and
  read back with the requested version's ``apiVersion`` (no conversion webhooks);
- core/v1 and events.k8s.io/v1 Events are separate collections;
- protobuf request bodies are understood only for ConfigMap, Secret, Namespace, ServiceAccount
  and DeleteOptions (what kubectl's imperative commands and Helm send); responses are JSON;
- watch history is kept in memory (100 000 events by default) rather than etcd's compaction
  window; resourceVersions are one global counter, as with etcd;
- list ``resourceVersion``/``resourceVersionMatch`` are ignored (lists are always current);
  continue tokens never expire;
- server-side apply tracks fields at the granularity of structured-merge-diff, but with simpler
  rules: no ``x-kubernetes-map-type: atomic`` ownership of whole maps, no unions, no
  version conversion of managed fields; strategic merge patch supports merge keys,
  ``$patch``, ``$deleteFromPrimitiveList`` and ``$retainKeys`` for the core types' lists;
- CEL rules see ``dyn`` values (no schema-typed compilation or cost limits) and lack the
  Kubernetes ``quantity``, ``url``, ``ip``/``cidr``, ``format`` and list ``indexOf`` libraries;
- OpenAPI: ``/openapi/v3`` is a stub good for kubectl's field-validation check and ``explain``
  of custom resources; ``/openapi/v2`` is absent; discovery is the legacy (unaggregated) form.
"""
