"""Expert placement for vLLM's EPLB, judged by predicted step time (numpy only; no Ray/vLLM/torch).

Shared by the operator's planner (``deepseek_operator.planner.eplb`` re-exports it) and the
engine, where vLLM's runtime EPLB runs our policy through its plugin entry point.

- ``placement``: the group's shape (`EplbTopology`), the placement algorithms (our hierarchical
  and global policies, trimmed variants) and the metrics vLLM uses (balancedness, weight moves);
- ``deepseek``: DeepSeek's reference EPLB, exactly (the numpy code vLLM ships as its default);
- ``cost``: the step-time model of one MoE layer (expert roofline + NVLink/RDMA all-to-all under
  node-limited routing) and the GPU figures table (``gpu_figures.json``);
- ``plan``: `plan_expert_placement`, the fastest candidate per layer;
- ``policy_config``: the policy's settings as the engine reads them (``DSD_EPLB_POLICY``);
- ``vllm_policy``: the vLLM plugin (``vllm.general_plugins`` entry point ``deepseek_eplb``) that
  registers our policy in vLLM's ``EPLB_POLICIES``; it alone imports vLLM and torch, lazily.
"""
