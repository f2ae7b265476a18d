"""The serving data plane of the DeepSeek operator: the Ray Serve application serveConfigV2 imports.

Modules, one responsibility each (importing this package loads nothing heavy):

- ``config``: ``ServingArgs``, the operator <-> serving contract, and ``engine_kwargs`` (pure, no
  Ray/vLLM/torch);
- ``llm_config``: the contract rendered into Ray Serve LLM's ``LLMConfig`` and gang options (pure);
- ``app``: ``build_app``, the serveConfigV2 import target (``deepseek_serving.app:build_app``);
- ``server``: the rank server (one Ray Serve replica per DP rank, vLLM's OpenAI app as ingress);
- ``http_guards``: API key, ``max_tokens`` cap, request deadline and the version headers in front
  of vLLM's app (plus test-only fault injection);
- ``metrics``: vLLM's metrics labeled with deployment/version/revision/group, per-rank queue depth;
- ``request_metrics``: requests answered by HTTP status and their duration, as clients see them;
- ``autoscaling_policy``: the group-count decision of queue-depth autoscaling (pure);
- ``autoscaling``: the Ray Serve policy adapter around it (per-group metrics, ``policy_state``);
- ``eplb``: expert placement judged by predicted step time, and the vLLM EPLB policy plugin;
- ``weighted_proxy``: a weighted HAProxy (canary splits where no Gateway runs: ``dsd run``, tests);
- ``cpu_compat``: the two CPU-only vLLM fixes that let DP/EP ranks run on CPU;
- ``local``: ``LocalCluster``/``serve_locally``, the embedded Ray behind ``dsd run``;
- ``tiny_model``: the offline tiny DeepSeek-V3 checkpoint for tests and demos;
"""
