"""Can tiny.en's head learn from base's? Cross-model distillation on the shipped recipe (issue 22).

The shipped heads of both Whisper models answer in the same text space. tiny.en's head learns from
the sung lyrics of each chunk; this benchmark trains it instead towards what the shipped base head
answers for the same chunk (``--teacher base``), or towards the normalised mean of the two
(``--teacher mix``), on the same chunks, split and seeds as ``livi build-default-heads``, and
scores the seeds' ensemble on the evaluation catalogues beside the shipped tiny.en head.

Needs the shipped recipe's chunk caches of both models under ``--work-dir`` (``livi
build-default-heads --whisper base`` and ``--whisper tiny.en`` make them). A chunk the base probe
cut differently (a segment id base has no row for) keeps its lyrics target; the result counts them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_learning_curves import evaluation_sets, shipped_scores  # noqa: E402

from livi_tasks.build.chunk_data import read_chunk_dataset  # noqa: E402
from livi_tasks.build.default_heads import (  # noqa: E402
    DEFAULT_CHUNKS,
    DEFAULT_SEEDS,
    Chunk,
    chunk_cache,
    train_head,
    training_pairs,
)
from livi_tasks.build.head_eval import evaluate_head  # noqa: E402
from livi_tasks.core.config import load_config  # noqa: E402
from livi_tasks.models.encoder import HeadEnsemble, head_from_bytes  # noqa: E402
from livi_tasks.models.registry import shipped_head  # noqa: E402

FAMILIES = ("randomised", "foreign", "foreign2", "broad", "demo")
BATCH = 32


@torch.no_grad()
def teacher_answers(head, work_dir: Path, chunk: Chunk, whisper: str) -> dict[str, np.ndarray]:
    """segment_id -> the head's unit vector for that chunk of ``whisper``'s cache."""
    data = read_chunk_dataset(chunk_cache(work_dir, chunk, whisper), ("hidden",))
    vectors = []
    for start in range(0, len(data.table), BATCH):
        frames = torch.from_numpy(np.asarray(data.states[start : start + BATCH], dtype=np.float32))
        hidden = torch.from_numpy(np.array(data.extra["hidden"][start : start + BATCH], dtype=bool))
        vectors.append(head(frames, hidden).numpy())
    return dict(zip(data.table["segment_id"], np.concatenate(vectors)))


def distilled_pairs(work_dir: Path, chunks: list[Chunk], teacher: str, student: str, mode: str):
    """The student's training pairs with their targets replaced; (pairs, rows that kept lyrics)."""
    pairs, _ = training_pairs(work_dir, chunks, student)
    head = head_from_bytes(*shipped_head(teacher)[:2])
    kept_lyrics = 0
    for index, chunk in enumerate(chunks):
        states, lyrics, hidden = pairs.sources[index]
        table = read_chunk_dataset(chunk_cache(work_dir, chunk, student), ()).table
        answers = teacher_answers(head, work_dir, chunk, teacher)
        targets = np.array(lyrics, dtype=np.float32)
        for row, segment in enumerate(table["segment_id"]):
            if segment not in answers:
                kept_lyrics += 1
            elif mode == "base":
                targets[row] = answers[segment]
            else:
                mean = targets[row] + answers[segment]
                targets[row] = mean / np.linalg.norm(mean)
        pairs.sources[index] = (states, targets, hidden)
    return pairs, kept_lyrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, required=True, help="build-default-heads' cache folder")
    parser.add_argument(
        "--teacher", choices=("base", "mix"), default="mix", help="base's answer, or mix: its mean with the lyrics"
    )
    parser.add_argument("--seed", type=int, action="append", help="training seeds (default the recipe's)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "cross_distillation.json")
    args = parser.parse_args()
    cfg = load_config()
    chunks = [Chunk(*spec) for spec in DEFAULT_CHUNKS]
    seeds = tuple(args.seed or DEFAULT_SEEDS)
    pairs, kept_lyrics = distilled_pairs(args.work_dir, chunks, "base", "tiny.en", args.teacher)
    runs = {
        seed: train_head(
            cfg, pairs, args.work_dir / "training" / f"tiny.en-teacher-{args.teacher}" / f"seed{seed}", seed
        )
        for seed in seeds
    }
    heads = {f"seed{seed}": run[0].head.eval() for seed, run in runs.items()}
    heads["ensemble"] = HeadEnsemble(list(heads.values())).eval()
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
        "rows_kept_lyrics": kept_lyrics,
        "validation_loss": {str(seed): run[0].best_loss for seed, run in runs.items()},
        "training_seconds": {str(seed): round(run[3], 1) for seed, run in runs.items()},
        "scores": scores,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, by_family in scores.items():
        print(name, " ".join(f"{family} {value['MAP']:.3f}" for family, value in by_family.items()))


if __name__ == "__main__":
    main()
