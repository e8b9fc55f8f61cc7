"""Evaluation results for the service: the latest report of a catalogue and the metrics of every
evaluated run (each run of the nightly retrain evaluates its model: one evaluate artifact each)."""

from __future__ import annotations

import io
import re
from datetime import datetime

from livi_tasks.core.names import CATALOGUE_NAME_PATTERN
from livi_tasks.core.store import MARKER, ArtifactMissing, ArtifactStore
from livi_tasks.stages.evaluate import METHOD_LABELS, STAGE

LATEST = "LATEST_EVALUATION.json"
HEADLINE = ("MAP", "MAP@10", "MR1", "HR@1", "HR@10", "P@10", "n_queries", "coverage")
_NAME = re.compile(CATALOGUE_NAME_PATTERN)


def evaluated_catalogues(store: ArtifactStore) -> list[str]:
    """Catalogues with a latest evaluation: the only names a report request may name."""
    names = (path.split("/")[-2] for path in store.fs.glob(store.join("*", LATEST)))
    return sorted(name for name in names if _NAME.match(name))


def _headline(methods: dict) -> dict:
    return {method: {name: values.get(name) for name in HEADLINE} for method, values in methods.items()}


def latest_metrics(store: ArtifactStore, catalogue: str) -> dict | None:
    """The latest evaluation's headline metrics per method, or None."""
    try:
        pointer = store.read_pointer(f"{catalogue}/{LATEST}")
    except ArtifactMissing:
        return None
    return {
        "fingerprint": pointer["fingerprint"],
        "evaluated_at": store.modified_at(store.join(catalogue, STAGE, "all", pointer["fingerprint"], MARKER)),
        "methods": _headline(pointer.get("methods", {})),
    }


def evaluation_runs(store: ArtifactStore, catalogue: str) -> list[dict]:
    """Every committed evaluation of the catalogue, oldest first: when, key and headline metrics."""
    runs = []
    for artifact in store.complete_artifacts(catalogue, STAGE):
        summary = artifact.summary()
        runs.append(
            {
                "fingerprint": artifact.key.fingerprint,
                "evaluated_at": store.modified_at(f"{artifact.url}/{MARKER}"),
                "methods": _headline(summary.get("methods", {})),
            }
        )
    return sorted(runs, key=lambda run: (run["evaluated_at"] or "", run["fingerprint"]))


def report_html(store: ArtifactStore, catalogue: str) -> bytes:
    pointer = store.read_pointer(f"{catalogue}/{LATEST}")
    return store.artifact(catalogue, STAGE, "all", pointer["fingerprint"]).read_bytes("report.html")


def map_plot(catalogue: str, runs: list[dict]) -> bytes:
    """PNG: MAP of each method over the evaluated runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.2))
    methods = sorted({method for run in runs for method in run["methods"]})
    stamps = [
        datetime.fromisoformat(run["evaluated_at"]) if run["evaluated_at"] else datetime.fromtimestamp(0)
        for run in runs
    ]
    for method in methods:
        points = [(s, r["methods"][method]["MAP"]) for s, r in zip(stamps, runs) if method in r["methods"]]
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=METHOD_LABELS.get(method, method))
    axis.set(title=f"MAP per evaluated run: {catalogue}", ylabel="MAP", ylim=(0, 1.02))
    axis.grid(alpha=0.3)
    if methods:
        axis.legend(fontsize=8, loc="lower left")
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
