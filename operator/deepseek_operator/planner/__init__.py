"""Pure planners: sizing, memory fit, placement bundles and the EPLB expert map.

Nothing in this package performs I/O or imports kopf, kubernetes, ray, vllm, torch, asyncio or
`time` (STYLE.md rule 1); import the submodules directly, e.g.
`from deepseek_operator.planner.eplb import plan_expert_placement`.
"""
