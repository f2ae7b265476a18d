"""Accelerators the planner knows by name, so a user can write `gpuType: H200` and nothing else.

Memory is what the driver reports as usable (about what `nvidia-smi` prints), rounded down to
whole GiB: planning against the marketing number ("141 GB") would over-commit every card.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GPU_TYPES", "GpuType", "known_gpu_types"]

GIB = 2**30


@dataclass(frozen=True)
class GpuType:
    name: str
    """Canonical name users write in `spec.resources.gpuType`, e.g. `H100`."""
    memory_bytes: int
    """Usable device memory in bytes."""
    resource_name: str
    """Extended resource the device plugin advertises, e.g. `nvidia.com/gpu`."""
    native_fp8: bool
    """Whether fp8 matmuls run natively (Hopper, Blackwell, MI300); otherwise weight-only fallbacks."""


GPU_TYPES: dict[str, GpuType] = {
    gpu.name: gpu
    for gpu in (
        GpuType("A100-40GB", 40 * GIB, "nvidia.com/gpu", native_fp8=False),
        GpuType("A100", 80 * GIB, "nvidia.com/gpu", native_fp8=False),
        GpuType("L40S", 44 * GIB, "nvidia.com/gpu", native_fp8=True),
        GpuType("H800", 79 * GIB, "nvidia.com/gpu", native_fp8=True),
        GpuType("H100", 79 * GIB, "nvidia.com/gpu", native_fp8=True),
        GpuType("H20", 95 * GIB, "nvidia.com/gpu", native_fp8=True),
        GpuType("H200", 140 * GIB, "nvidia.com/gpu", native_fp8=True),
        GpuType("B200", 178 * GIB, "nvidia.com/gpu", native_fp8=True),
        GpuType("MI300X", 191 * GIB, "amd.com/gpu", native_fp8=True),
        GpuType("MI325X", 255 * GIB, "amd.com/gpu", native_fp8=True),
    )
}


def known_gpu_types() -> str:
    """The names for error messages: `A100-40GB, A100, …`."""
    return ", ".join(GPU_TYPES)
