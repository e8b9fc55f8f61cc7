"""Where a shipped head misses: its MAP by what the generator made each version of (issue 22).

Every evaluation catalogue (the seed-1 catalogues of ``bench_learning_curves.py``, from its cache)
is ranked as the pipeline ranks it (centred, chunk re-ranking) with the shipped head of one
Whisper model. Each query's average precision is then grouped by the columns of the catalogue's
``tracks.csv``, the generator's own record of the version (kind, engine, way of singing, song
form, instruments, codec, sample rate, SNR, tempo, ...; numbers with many values in tertiles),
and each (query, another version of its work) pair by whether the two share a value: a pair is
*found* when that version scores above every track of other works. The columns whose groups
differ most say which part of the sound the head has not learned, and so what the training
world needs next (learning curves say how much data; this says which).

    .venv/bin/python benchmarks/bench_misses.py --work-dir data/default-heads --whisper base \
        --eval randomised --eval foreign --eval broad --eval demo --out benchmarks/results/misses_base.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_learning_curves import evaluation_corpus, evaluation_sets
from flop_bound import machine_facts

from livi_tasks.build.head_eval import query_outcomes, rank_catalogue, version_pairs
from livi_tasks.core.atomic import write_bytes_atomic
from livi_tasks.core.config import load_config
from livi_tasks.core.metrics import bootstrap_interval
from livi_tasks.models.encoder import head_from_bytes
from livi_tasks.models.registry import shipped_head

# tracks.csv columns that name a track or its work rather than describe how it was made
IDENTIFIERS = {"track_id", "work_id", "family", "key", "backing_of", "programs", "voices"}
MAX_GROUPS = 12  # more groups than this (e.g. 96 espeak-ng voices) are compared as same / different only
PAIR_GROUPS = 6  # columns with at most this many values also get a row per pair of values
MIN_QUERIES = 5  # a group smaller than this is reported but does not count towards the spread


def version_attributes(tracks_csv: pd.DataFrame) -> pd.DataFrame:
    """The descriptive columns of ``tracks.csv`` as group labels, indexed by track_id: numbers with
    more than six values in tertiles, everything else as text (an empty cell is its own group)."""
    table = tracks_csv.set_index("track_id")
    groups = {}
    for column in table.columns.difference(sorted(IDENTIFIERS)):
        values = table[column]
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > 6:
            values = pd.qcut(values, 3, duplicates="drop")
        groups[column] = values.astype(object).where(values.notna(), "").astype(str)
    return pd.DataFrame(groups, index=table.index)


def map_by_group(queries: pd.DataFrame, attributes: pd.DataFrame) -> dict:
    """Per column whose queries fall in 2..MAX_GROUPS groups: each group's queries, MAP (95%
    interval) and HR@1, and the column's spread (best minus worst group of >= MIN_QUERIES)."""
    by_column = {}
    for column in attributes.columns:
        labels = attributes.loc[queries["track_id"], column].to_numpy()
        if not 2 <= len(set(labels)) <= MAX_GROUPS:
            continue
        groups = {}
        for label in sorted(set(labels)):
            chosen = queries[labels == label]
            groups[label] = {
                "queries": len(chosen),
                "MAP": float(chosen["average_precision"].mean()),
                "MAP_ci95": bootstrap_interval(chosen["average_precision"].to_numpy()),
                "HR@1": float((chosen["first_rank"] == 1).mean()),
            }
        counted = [g["MAP"] for g in groups.values() if g["queries"] >= MIN_QUERIES]
        spread = max(counted) - min(counted) if len(counted) >= 2 else 0.0
        by_column[column] = {"spread": spread, "groups": groups}
    return dict(sorted(by_column.items(), key=lambda item: -item[1]["spread"]))


def found_by_relation(pairs: pd.DataFrame, attributes: pd.DataFrame) -> dict:
    """Per column: the share of version pairs found when the two versions share its value and when
    they do not, and for columns of few values the share per pair of values."""
    by_column = {}
    for column in attributes.columns:
        query = attributes.loc[pairs["query"], column].to_numpy()
        version = attributes.loc[pairs["version"], column].to_numpy()
        same, values = query == version, len(set(query) | set(version))
        if same.all() or (not same.any() and values > PAIR_GROUPS):  # nothing to compare
            continue
        relations = {}
        for name, chosen in (("same", same), ("different", ~same)):
            if chosen.any():
                relations[name] = {"pairs": int(chosen.sum()), "found": float(pairs["found"][chosen].mean())}
        if values <= PAIR_GROUPS:
            named = np.array([" / ".join(sorted(pair)) for pair in zip(query, version, strict=True)])
            for name in sorted(set(named)):
                chosen = named == name
                relations[name] = {"pairs": int(chosen.sum()), "found": float(pairs["found"][chosen].mean())}
        by_column[column] = relations
    return by_column


def markdown(results: dict, columns: int) -> str:
    """Per family, the ``columns`` columns of largest spread: each group's MAP and query count."""
    lines = []
    for family, result in results["families"].items():
        lines += [f"**{family}** (MAP {result['MAP']:.3f}, {result['queries']} queries)", ""]
        lines += ["| column | spread | groups: MAP (queries) |", "|---|---|---|"]
        for column, scores in list(result["by_column"].items())[:columns]:
            groups = ", ".join(
                f"{label or '-'} {group['MAP']:.3f} ({group['queries']})" for label, group in scores["groups"].items()
            )
            lines.append(f"| {column} | {scores['spread']:.3f} | {groups} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--work-dir", type=Path, default=Path("data/default-heads"), help="the cache of bench_learning_curves.py"
    )
    parser.add_argument("--whisper", default="base", help="Whisper model whose shipped head is scored")
    parser.add_argument(
        "--eval",
        action="append",
        dest="families",
        help="evaluation family (repeatable; default: randomised, foreign, demo)",
    )
    parser.add_argument("--columns", type=int, default=6, help="columns per family in the printed table")
    parser.add_argument("--out", type=Path, help="JSON to write (default benchmarks/results/misses_<whisper>.json)")
    args = parser.parse_args()

    load_before = os.getloadavg()
    out = args.out or Path(__file__).resolve().parent / "results" / f"misses_{args.whisper}.json"
    cfg = load_config(environ={})
    families = args.families or ["randomised", "foreign", "demo"]
    sets, threshold = evaluation_sets(cfg, args.work_dir, args.whisper, families)
    weights, config, card = shipped_head(args.whisper)
    head = head_from_bytes(weights, config)
    results = {"whisper": args.whisper, "head_sha256": card["head_sha256"], "families": {}}
    for family, (data, _) in sets.items():
        started = time.perf_counter()
        tracks, ranking = rank_catalogue(head, data, cfg, threshold)
        queries, pairs = query_outcomes(tracks, ranking), version_pairs(tracks, ranking)
        attributes = version_attributes(pd.read_csv(evaluation_corpus(args.work_dir, family) / "tracks.csv"))
        results["families"][family] = {
            "MAP": float(queries["average_precision"].mean()),
            "queries": len(queries),
            "pairs_found": float(pairs["found"].mean()),
            "by_column": map_by_group(queries, attributes),
            "pairs_by_column": found_by_relation(pairs, attributes),
            "seconds": round(time.perf_counter() - started, 1),
        }
    results["machine"] = machine_facts(load_before)
    results["measured"] = time.strftime("%Y-%m-%d")
    write_bytes_atomic(out, (json.dumps(results, indent=1) + "\n").encode())
    print(markdown(results, args.columns))


if __name__ == "__main__":
    main()
