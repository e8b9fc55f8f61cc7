"""Can tiny.en's head learn from base's? Cross-model distillation on the shipped recipe (issue 22).

The shipped heads of both Whisper models answer in the same text space. This benchmark trains
tiny.en's head towards what the shipped base head answers for each chunk (``--teacher base``), or
towards the normalised mean of that and the chunk's lyrics (``--teacher lyrics+base``, what
``livi build-default-heads --teacher lyrics+base`` ships), on the same chunks, split and seeds as
the build (``default_heads.teach`` sets the targets), and scores the seeds' ensemble on the
evaluation catalogues beside the shipped tiny.en head (with more than two seeds, the ensembles of
the first two, three, ... seeds as well).

Needs the shipped recipe's chunk caches of both models under ``--work-dir`` (``livi
build-default-heads --whisper base`` and ``--whisper tiny.en`` make them). A chunk the base probe
did not keep keeps its lyrics target; the result counts them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_learning_curves import evaluation_sets, shipped_scores  # noqa: E402

from livi_tasks.build.default_heads import (  # noqa: E402
    DEFAULT_CHUNKS,
    DEFAULT_SEEDS,
    Chunk,
    teach,
    train_head,
    training_folder,
    training_pairs,
)
from livi_tasks.build.head_eval import evaluate_head  # noqa: E402
from livi_tasks.core.config import load_config  # noqa: E402
from livi_tasks.models.encoder import HeadEnsemble  # noqa: E402
from livi_tasks.models.registry import SHIPPED_DIR  # noqa: E402

FAMILIES = ("randomised", "foreign", "foreign2", "broad", "demo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--work-dir", type=Path, default=REPO / "data" / "default-heads", help="build-default-heads' cache folder"
    )
    parser.add_argument(
        "--teacher",
        choices=("base", "lyrics+base"),
        default="base",
        help="base's answer alone, or lyrics+base: its normalised mean with the lyrics (the shipped recipe's)",
    )
    parser.add_argument("--seed", type=int, action="append", help="training seeds (default the recipe's)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "cross_distillation.json")
    args = parser.parse_args()
    cfg = load_config()
    chunks = [Chunk(*spec) for spec in DEFAULT_CHUNKS]
    seeds = tuple(args.seed or DEFAULT_SEEDS)
    pairs, _ = training_pairs(args.work_dir, chunks, "tiny.en")
    teacher = tuple(args.teacher.split("+"))
    missing, _ = teach(pairs, args.work_dir, chunks, "tiny.en", teacher, SHIPPED_DIR)
    runs = {
        seed: train_head(cfg, pairs, training_folder(args.work_dir, "tiny.en", teacher) / f"seed{seed}", seed)
        for seed in seeds
    }
    heads = {f"seed{seed}": run[0].head.eval() for seed, run in runs.items()}
    members = list(heads.values())
    for size in range(2, len(members) + 1):  # the ensembles of the first 2, 3, ... seeds
        heads["ensemble" + "+".join(str(seed) for seed in seeds[:size])] = HeadEnsemble(members[:size]).eval()
    sets, threshold = evaluation_sets(cfg, args.work_dir, "tiny.en", list(FAMILIES))
    evaluations = {
        name: {family: evaluate_head(head, data, cfg, threshold, kinds) for family, (data, kinds) in sets.items()}
        for name, head in heads.items()
    }
    evaluations["shipped"] = shipped_scores(cfg, "tiny.en", sets, threshold)["evaluation"]
    scores = {
        name: {
            family: {key: value for key, value in by_key.items() if key.startswith("MAP")}
            for family, by_key in found.items()
        }
        for name, found in evaluations.items()
    }
    result = {
        "teacher": args.teacher,
        "pairs": len(pairs),
        "teacher_answers_missing": missing,
        "validation_loss": {str(seed): run[0].best_loss for seed, run in runs.items()},
        "training_seconds": {str(seed): round(run[3], 1) for seed, run in runs.items()},
        "scores": scores,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, by_family in scores.items():
        print(name, " ".join(f"{family} {value['MAP']:.3f}" for family, value in by_family.items()))


if __name__ == "__main__":
    main()
