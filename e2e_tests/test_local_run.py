"""The local view end to end: `dsd run` serves a deployment of two groups on an embedded Ray.

The real command in its own process, the real `openai` client, Ctrl-C to stop: what a person does
on a laptop. Two groups of one rank each are two gangs; both must take requests.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from e2e_tests.support import BURST_CLIENTS, Load, eventually, one_to_two_groups
from tests.api.resources import example

pytest.importorskip("vllm", reason="dsd run serves with vLLM (extra: cpu)")


def tiny_document(tmp_path: Path) -> dict[str, Any]:
    """The tiny-local example serving the tiny model built under `tmp_path`."""
    from deepseek_serving.tiny_model import build_tiny_model

    document = example("tiny-local")
    document["spec"]["model"]["source"] = f"file://{build_tiny_model(tmp_path / 'deepseek-tiny')}"
    return document


class DsdRun:
    """`dsd run` of `document` in its own process, its output collected; `stop` is Ctrl-C."""

    def __init__(self, document: dict[str, Any], tmp_path: Path) -> None:
        from deepseek_serving.local import free_port

        manifest = tmp_path / "tiny.yaml"
        manifest.write_text(yaml.safe_dump(document))
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deepseek_operator", "run", str(manifest), "--port", str(self.port)],
            env={**os.environ, "COLUMNS": "200"},  # the live view's columns uncut (it is not a terminal)
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        stdout = self.process.stdout
        assert stdout is not None
        threading.Thread(target=lambda: self.output.extend(iter(stdout.readline, "")), daemon=True).start()

    @property
    def printed(self) -> str:
        return "".join(self.output)

    def stop(self, how: signal.Signals = signal.SIGINT) -> int:
        """Ctrl-C (SIGINT), or SIGTERM as `timeout`, systemd and `docker stop` send it."""
        self.process.send_signal(how)
        return self.process.wait(timeout=120)


def test_dsd_run_serves_two_groups_until_terminated(tmp_path: Path) -> None:
    """Stopped by SIGTERM (the other tests press Ctrl-C): the same drain and a clean exit, not the
    abort of Ray's own SIGTERM handler."""
    document = tiny_document(tmp_path)
    document["spec"]["groups"] = 2
    run = DsdRun(document, tmp_path)
    try:
        base = f"http://127.0.0.1:{run.port}/v1"
        eventually(
            lambda: httpx.get(f"{base}/models", timeout=5).status_code == 200, timeout=600, what="dsd run"
        )
        from openai import OpenAI

        client = OpenAI(base_url=base, api_key="unused", timeout=120)
        chat = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "Hello"}], max_tokens=8
        )
        assert chat.choices[0].message.content
        assert chat.usage is not None
        assert 0 < chat.usage.completion_tokens <= 8
        streamed = "".join(
            chunk.choices[0].text
            for chunk in client.completions.create(
                model="tiny", prompt="def f(x):", max_tokens=8, stream=True
            )
            if chunk.choices
        )
        assert streamed

        # Both groups serve: requests spread over two engine replicas (vLLM's own counters show it).
        threads = [
            threading.Thread(
                target=client.completions.create, kwargs={"model": "tiny", "prompt": "x", "max_tokens": 4}
            )
            for _ in range(16)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        metrics_url = re.search(r"metrics at (\S+);", run.printed)
        assert metrics_url, run.printed

        url = metrics_url.group(1)
        eventually(lambda: len(_replicas_that_answered(url)) >= 2, timeout=60, what="both groups answering")
        assert len(_replicas_that_answered(url)) == 2
    finally:
        code = run.stop(signal.SIGTERM)
    assert code == 0, run.printed
    assert "stopping: in-flight requests finish first" in run.printed


def test_dsd_run_rolls_out_the_last_version_by_weight_without_failing_a_request(tmp_path: Path) -> None:
    """Two versions in the file: the first serves, the last is rolled out through the steps (50%,
    a pause, promotion) on the same embedded Ray, the local proxy splitting by the weights."""
    document = tiny_document(tmp_path)
    first = document["spec"]["versions"][0]
    document["spec"]["versions"] = [first, {**first, "name": "v2"}]
    document["spec"]["rollout"] = {"steps": [{"setWeight": 50}, {"pause": {"durationSeconds": 30}}]}
    document["spec"]["serving"]["limits"]["requestTimeoutSeconds"] = 10
    run = DsdRun(document, tmp_path)
    base = f"http://127.0.0.1:{run.port}"
    client = Load(base)
    answers = client.answers
    try:
        eventually(
            lambda: httpx.get(f"{base}/v1/models", timeout=5).status_code == 200,
            timeout=600,
            what="v1 serves",
        )
        client.start()
        eventually(lambda: any(version == "v2" for _, _, version in answers), timeout=600, what="v2 at 50%")
        since = next(at for at, _, version in answers if version == "v2")
        time.sleep(20)
        share, answered = client.share("v2", since + 2, since + 20)
        assert answered >= 20, answered
        assert 0.25 <= share <= 0.75, share
        eventually(
            lambda: len(answers) > 10 and all(version == "v2" for _, _, version in answers[-10:]),
            timeout=300,
            what="v2 promoted",
        )
    finally:
        client.stop()
        code = run.stop()
    assert code == 0, run.printed
    assert client.failures == []


def test_dsd_run_adds_a_group_for_a_burst_and_removes_it_after_without_a_failed_request(
    tmp_path: Path,
) -> None:
    """Autoscaling 1..2 groups: `dsd run` prints each decision of the policy running in Ray Serve
    (with its reason), and its live view the last one; the second group answers during the burst
    and leaves after it, drained."""
    document = tiny_document(tmp_path)
    del document["spec"]["groups"]
    document["spec"]["autoscaling"] = one_to_two_groups()
    document["spec"]["serving"]["limits"]["requestTimeoutSeconds"] = 30
    run = DsdRun(document, tmp_path)
    base = f"http://127.0.0.1:{run.port}"
    witness = Load(base, clients=1, max_tokens=4, pause_s=1.0)
    burst = Load(base, clients=BURST_CLIENTS, max_tokens=64, pause_s=0.0)
    try:
        eventually(
            lambda: httpx.get(f"{base}/v1/models", timeout=5).status_code == 200, timeout=600, what="serving"
        )
        serving_line = eventually(
            lambda: re.search(r"metrics at (\S+);", run.printed), timeout=60, what="the serving line"
        )
        assert serving_line is not None
        metrics_url = serving_line.group(1)
        witness.start()
        burst_started = time.monotonic()
        burst.start()
        eventually(lambda: "1 → 2 group(s)" in run.printed, timeout=120, what="scale-up decision")
        decided_s = time.monotonic() - burst_started
        eventually(lambda: len(_replicas_that_answered(metrics_url)) == 2, timeout=600, what="2nd group")
        answering_s = time.monotonic() - burst_started
        burst.stop()
        print(f"\nburst → scale-up decided {decided_s:.0f} s, second group answering {answering_s:.0f} s")
        quiet_started = time.monotonic()
        try:
            eventually(lambda: "2 → 1 group(s)" in run.printed, timeout=300, what="scale-down decision")
        except AssertionError as error:
            raise AssertionError(f"{error}; the policy's gauges: {_policy_gauges(metrics_url)}") from error
        print(f"quiet → scale-down decided {time.monotonic() - quiet_started:.0f} s")
        time.sleep(40)  # the leaving group drains (≤ requestTimeoutSeconds) while the witness goes on
    finally:
        burst.stop()
        witness.stop()
        code = run.stop()
    printed = run.printed
    assert code == 0, printed
    assert re.search(r"v1: 1 → 2 group\(s\), queue depth \d+.*\(ScaleUp: .*scale up to 2", printed), printed
    assert re.search(r"v1: 2 → 1 group\(s\).*\(ScaleDown: ", printed), printed
    # Not a terminal: the live view's last frame is printed once, on exit.
    assert re.search(r"\bv1\b.*2 → 1 ScaleDown at \d", printed), printed
    assert burst.failures == [], burst.failures[:5]
    assert witness.failures == [], witness.failures[:5]
    assert witness.answered >= 40, witness.answered


def _policy_gauges(metrics_url: str) -> dict[str, float]:
    """What the autoscaling policy last exported (level, forecast, target, ready groups)."""
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=5).text)
        for sample in family.samples
        if "deepseek_serving_autoscaling" in sample.name and not sample.name.endswith("_created")
    }


def _replicas_that_answered(metrics_url: str) -> set[str]:
    served: set[str] = set()
    for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=5).text):
        for sample in family.samples:
            if "vllm" in sample.name and "request_success" in sample.name and sample.value > 0:
                served.add(sample.labels.get("ReplicaId", ""))
    return served
