"""The thread budget reaches torch whether it is set before torch is imported or after."""

from __future__ import annotations

import subprocess
import sys

import pytest

from livi_tasks.core.threads import budget_from_environment


@pytest.mark.parametrize(
    "code",
    [
        "from livi_tasks.core.threads import limit_threads; limit_threads(1); import torch",
        "import torch; from livi_tasks.core.threads import limit_threads; limit_threads(1)",
    ],
    ids=["before-torch", "after-torch"],
)
def test_the_budget_reaches_torch(code):
    done = subprocess.run(
        [sys.executable, "-c", code + "; print(torch.get_num_threads())"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.stdout.strip() == "1", done.stderr


def test_the_environment_names_the_budget(monkeypatch):
    monkeypatch.delenv("LIVI_TASK_THREADS", raising=False)
    assert budget_from_environment() is None
    monkeypatch.setenv("LIVI_TASK_THREADS", "3")
    assert budget_from_environment() == 3
    monkeypatch.setenv("LIVI_TASK_THREADS", "0")
    assert budget_from_environment() == 1
