"""The serving bench's pure parts: statistics, comparison rows, engine flags, settings projection."""

from __future__ import annotations

import pytest

from deepseek_operator.bench.serving import (
    LevelStats,
    compare_levels,
    effective_engine_settings,
    engine_cli_flags,
    summarize_level,
)


def test_summarize_level() -> None:
    stats = summarize_level(8, [0.010, 0.030, 0.020, 0.100], completion_tokens=512, wall_s=2.0)
    assert stats == LevelStats(
        concurrency=8,
        requests=4,
        output_tokens_per_s=256.0,
        ttft_p50_ms=pytest.approx(25.0),
        ttft_p95_ms=100.0,
    )


def test_compare_levels_states_the_goal_metrics() -> None:
    bare = [LevelStats(1, 16, 400.0, 6.0, 8.0)]
    served = [LevelStats(1, 16, 380.0, 7.5, 9.0)]
    assert compare_levels(bare, served) == [
        {
            "concurrency": 1,
            "requests": 16,
            "bare_tokens_per_s": 400.0,
            "serve_tokens_per_s": 380.0,
            "throughput_ratio": 0.95,
            "bare_ttft_p50_ms": 6.0,
            "serve_ttft_p50_ms": 7.5,
            "ttft_p50_delta_ms": 1.5,
            "bare_ttft_p95_ms": 8.0,
            "serve_ttft_p95_ms": 9.0,
        }
    ]


def test_engine_cli_flags() -> None:
    flags = engine_cli_flags(
        {
            "max_num_seqs": 32,
            "enforce_eager": True,
            "enable_eplb": False,
            "override_generation_config": {"a": 1},
        }
    )
    assert flags == [
        "--max-num-seqs",
        "32",
        "--enforce-eager",
        "--no-enable-eplb",
        "--override-generation-config",
        '{"a": 1}',
    ]


def test_effective_engine_settings_projects_the_compared_keys() -> None:
    config = {
        "scheduler_config": {"max_num_seqs": 32, "unrelated": 1},
        "model_config": {"max_model_len": 1024},
    }
    settings = effective_engine_settings(config)
    assert settings["scheduler_config.max_num_seqs"] == 32
    assert settings["model_config.max_model_len"] == 1024
    assert settings["cache_config.block_size"] is None
    assert "scheduler_config.unrelated" not in settings
