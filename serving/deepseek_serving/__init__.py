"""The serving data plane of the DeepSeek operator: the Ray Serve application serveConfigV2 imports.

Modules, one responsibility each (importing this package loads nothing heavy):

- ``config``: ``ServingArgs``, the operator <-> serving contract, and ``engine_kwargs`` (pure, no
  Ray/vLLM/torch);
- ``llm_config``: the contract rendered into Ray Serve LLM's ``LLMConfig`` and gang options (pure);
- ``app``: ``build_app``, the serveConfigV2 import target (``deepseek_serving.app:build_app``);
- ``server``: the rank server (one Ray Serve replica per DP rank, vLLM's OpenAI app as ingress);
- ``http_guards``: API key, ``max_tokens`` cap, request deadline and the version headers in front
  of vLLM's app (plus test-only fault injection);
- ``metrics``: vLLM's metrics labeled with deployment/version/group, per-rank queue depth;
- ``autoscaling``: queue-depth scaling in whole groups (pure decision + Ray Serve policy);
- ``cpu_compat``: the two CPU-only vLLM fixes that let DP/EP ranks run on CPU;
- ``local``: ``serve_locally``, the embedded-Ray local view behind ``dsd run``;
- ``tiny_model``: the offline tiny DeepSeek-V3 checkpoint for tests and demos;
"""
