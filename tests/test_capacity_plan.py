"""docs/SCALING.md's plan is what benchmarks/capacity_plan.py computes from the committed results."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import capacity_plan  # noqa: E402


def test_scaling_doc_holds_the_plan_computed_from_the_benchmark_results():
    text = capacity_plan.markdown(capacity_plan.plan(capacity_plan.arguments([])))
    assert capacity_plan.generated_block((REPO / "docs" / "SCALING.md").read_text()) == text.strip(), (
        "docs/SCALING.md is stale: run `.venv/bin/python benchmarks/capacity_plan.py --write docs/SCALING.md`"
    )


def test_plan_scales_with_the_catalogue():
    small = capacity_plan.plan(capacity_plan.arguments(["--tracks", "1000000"]))
    large = capacity_plan.plan(capacity_plan.arguments(["--tracks", "10000000"]))
    assert large["index"]["memory_gb"] > 9 * small["index"]["memory_gb"]
    assert large["first_run"]["machine_hours"] > 5 * small["first_run"]["machine_hours"]
    assert large["airflow"]["runs_for_catalogue"] * large["airflow"]["tracks_per_run_at_most"] >= 10_000_000
    assert large["index"]["search_p50_ms_projected"] < 2.0
