"""Shared pytest configuration: the test environment's fixtures (``deepseek_operator.testing``)."""

pytest_plugins = ["deepseek_operator.testing.pytest_plugin"]
