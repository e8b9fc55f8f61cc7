"""Learning curves and ablations of the shipped heads: where does the student's quality come from?

Every head here is trained by the shipped recipe's own code (``build.default_heads``: one-pass
30 s chunks, the probe's unsung frames hidden, true-lyrics teacher, whole works held out for early
stopping) and scored in seconds on cached evaluation catalogues (``build.head_eval``: the embed
stage's pooling and vocal rule, every track ranked, MAP with its 95% bootstrap interval over
queries). The evaluation catalogues are never trained on (seed 1 of each family; the demo's seed 0):

- ``randomised``: the training family's sound, unseen works;
- ``foreign``: the evaluation-only family (Festival voices, other instruments, words, structure);
- ``demo``: the catalogue ``make demo`` evaluates (6 works x 2 versions + 2 distractors, seed 0);
- any other family of ``synth.corpus.FAMILIES`` or ``synth.songs.SONG_FAMILIES`` named with ``--eval``
  (``broad``: the broader training world's sound, unseen works; ``foreign2``: the second
  evaluation-only family).

Modes (a results file collects them; a run already in it is skipped, so a killed job resumes):

- ``sizes``: heads trained on N works drawn from the pool of ``--chunk`` catalogues (both versions
  of each drawn work), for each N of ``--sizes`` and ``--repeats`` draws;
- ``voices``: heads trained on the same number of examples (``--voice-examples``) sung by K distinct
  voices (the first K of a random order; 0: all), by one engine's voices (``flite``) or by K of them
  (``espeak-ng:24``), so that the number of voices and engines is the only thing that changes;
- ``ablation``: one head per named variant of the recipe (``--variant NAME:section.field=value,...``);
- ``reevaluate``: every head already measured, scored again on evaluation families it lacks (its
  best weights are in the run's checkpoint), so that a family added later covers earlier runs;
- ``shipped``: the head shipped for ``--whisper`` (``livi_tasks/models/shipped``), scored on the
  same catalogues, so that every table has the reference it must beat; with ``--card`` the scores
  become the head's card ``evaluation``, beside the ASR-lyrics MAP of ``--asr-reference`` (a
  ``bench_generalisation.py`` result on the same catalogues: the ASR path does not use the head).

    .venv/bin/python benchmarks/bench_learning_curves.py sizes --work-dir data/default-heads \\
        --chunk 100:150 --chunk 101:150 --sizes 100 200 300 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flop_bound import machine_facts

from livi_tasks.build.chunk_data import encoder_states_of, evaluation_dataset
from livi_tasks.build.default_heads import (
    EVALUATION_SEED,
    Chunk,
    chunk_cache,
    prepare_chunk,
    train_head,
    training_pairs,
)
from livi_tasks.build.demo import make_demo_catalogue
from livi_tasks.build.head_eval import evaluate_head
from livi_tasks.build.synth.corpus import FAMILIES, make_corpus
from livi_tasks.build.synth.songs import SONG_FAMILIES
from livi_tasks.core.atomic import write_bytes_atomic
from livi_tasks.core.config import LiviConfig, load_config, parse_overrides
from livi_tasks.models.identity import whisper_identity
from livi_tasks.models.registry import SHIPPED_DIR
from livi_tasks.models.vocal_probe import load_probe, probe_digest, shipped_probe_dir

EVALUATION_SHAPE = {"works": 24, "versions": 3, "instrumentals": 6, "hard_negatives": 6}
DEMO_SHAPE = {"works": 6, "versions": 2, "instrumentals": 1, "hard_negatives": 1, "seed": 0}  # make demo's


def evaluation_corpus(work_dir: Path, family: str) -> Path:
    """The evaluation catalogue of a family (made once): seed 1 of a song family, the demo's own."""
    if family == "demo":
        return make_demo_catalogue(work_dir / "eval" / "corpus" / "demo_seed0", **DEMO_SHAPE).parent
    folder = work_dir / "eval" / "corpus" / f"{family}_seed{EVALUATION_SEED}"
    return make_corpus(folder, family, seed=EVALUATION_SEED, **EVALUATION_SHAPE).parent


def evaluation_sets(
    cfg: LiviConfig, work_dir: Path, whisper: str, families: list[str], all_layers: bool = False
) -> dict:
    """Cached evaluation chunks of each family (fp32 frame states: the default inference)."""
    probe = load_probe(whisper, whisper_identity(whisper, cfg.models_dir)["id"])
    states = encoder_states_of(whisper, cfg.models_dir, "fp32", all_layers=all_layers)
    sets = {}
    for family in families:
        corpus = evaluation_corpus(work_dir, family)
        # The cache holds the probe's vocalness: a new probe gets a new folder.
        name = f"{whisper}{'-layers' if all_layers else ''}-probe{probe_digest(shipped_probe_dir(whisper))[:8]}"
        folder = work_dir / "eval" / family / name
        data = evaluation_dataset(corpus, folder, states, probe, family)
        sets[family] = (data, pd.read_csv(corpus / "tracks.csv").set_index("track_id")["kind"])
    return sets, probe.threshold


def score(cfg: LiviConfig, pairs, out_dir: Path, sets: dict, threshold: float) -> dict:
    result, train_index, val_index, seconds, threads = train_head(cfg, pairs, out_dir)
    return {
        "examples": int(len(pairs)),
        "works": int(len(set(pairs.work_ids))),
        "train_examples": int(len(train_index)),
        "head": result.head.config(),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "train_seconds": round(seconds, 1),
        "torch_threads": threads,
        "load_average": os.getloadavg(),
        "evaluation": {
            family: evaluate_head(result.head, data, cfg, threshold, kinds) for family, (data, kinds) in sets.items()
        },
    }


def voice_of(work_dir: Path, chunk: Chunk) -> pd.Series:
    """track_id -> ``engine:voice`` of a training catalogue (the demo generator's engine is espeak-ng)."""
    tracks = pd.read_csv(work_dir / "corpus" / chunk.name / "tracks.csv").set_index("track_id")
    engine = tracks["engine"] if "engine" in tracks else pd.Series("espeak-ng", tracks.index)
    return engine.astype(str) + ":" + tracks["voice"].astype(str)


def pool_works(work_dir: Path, chunks: list[Chunk], whisper: str) -> pd.DataFrame:
    """One row per training example of the pool: its chunk, row in that chunk's table, work
    (``<chunk>/<work>``) and voice."""
    rows = []
    for chunk in chunks:
        table = pd.read_parquet(chunk_cache(work_dir, chunk, whisper) / "chunks.parquet")
        work = chunk.name + "/" + table["work_id"].astype(str)
        voice = table["track_id"].map(voice_of(work_dir, chunk))
        rows.append(pd.DataFrame({"chunk": chunk.name, "row": np.arange(len(table)), "work": work, "voice": voice}))
    return pd.concat(rows, ignore_index=True)


def segment_style_pairs(work_dir: Path, chunks: list[Chunk], whisper: str):
    """The former recipe's examples: 30 s segments planned around the sung regions (up to 10 s of
    padding), every frame pooled, as cached by the shipped recipe before one-pass chunks."""
    from livi_tasks.stages.train_encoder import FramePairs

    sources, rows, works = [], [], []
    for index, chunk in enumerate(chunks):
        cache = work_dir / "cache" / chunk.name
        table = pd.read_parquet(cache / "segments.parquet")
        sources.append((np.load(cache / f"states-{whisper}.npy", mmap_mode="r"), np.load(cache / "text.npy")))
        rows.append(np.stack([np.full(len(table), index), np.arange(len(table)), np.arange(len(table))], axis=1))
        works += (chunk.name + "/" + table["work_id"].astype(str)).tolist()
    return FramePairs(sources, np.concatenate(rows), works)


def selection(works: set[str]):
    """``keep`` for ``training_pairs``: examples of the chosen works."""

    def keep(chunk: Chunk, table: pd.DataFrame) -> np.ndarray:
        return (chunk.name + "/" + table["work_id"].astype(str)).isin(works).to_numpy()

    return keep


def rows_selection(examples: pd.DataFrame):
    """``keep`` for ``training_pairs``: these rows of ``pool_works``."""

    def keep(chunk: Chunk, table: pd.DataFrame) -> np.ndarray:
        return np.isin(np.arange(len(table)), examples.loc[examples["chunk"] == chunk.name, "row"])

    return keep


def voice_set(spec: str, voices: np.ndarray) -> set[str]:
    """The voices a ``--voices`` item allows, taken in the order of ``voices`` (a random order):
    ``K`` the first K (0: all), ``ENGINE`` every voice of that engine, ``ENGINE:K`` its first K."""
    engine, _, count = spec.rpartition(":") if ":" in spec or spec.isdigit() else (spec, "", "0")
    if not count.isdigit():
        raise SystemExit(f"--voices: {spec!r} is not K, ENGINE or ENGINE:K")
    allowed = [voice for voice in voices if not engine or voice.split(":")[0] == engine]
    if not allowed:
        engines = sorted({voice.split(":")[0] for voice in voices})
        raise SystemExit(f"--voices: no voice of engine {engine!r} in the pool ({', '.join(engines)})")
    return set(allowed[: int(count)] if int(count) else allowed)


def plot(results: dict, path: Path) -> None:
    """MAP (95% interval) against training works, one line per evaluation family and Whisper model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for whisper, runs in results.get("sizes", {}).items():
        families = sorted({family for run in runs.values() for family in run["evaluation"]})
        for family in families:
            points = sorted((run["works"], run["evaluation"][family]) for run in runs.values())
            sizes = [size for size, _ in points]
            maps = np.array([scores["MAP"] for _, scores in points])
            low = maps - np.array([scores["MAP_ci95"][0] for _, scores in points])
            high = np.array([scores["MAP_ci95"][1] for _, scores in points]) - maps
            axis.errorbar(sizes, maps, yerr=[low, high], marker="o", capsize=3, label=f"{family} ({whisper})")
    axis.set_xscale("log")
    axis.set_xlabel("training works (2 versions each)")
    axis.set_ylabel("MAP, every track ranked (95% bootstrap interval)")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run_folder(work_dir: Path, whisper: str, mode: str, label: str) -> Path:
    """Where a run's checkpoints are (the labels of ``record``: ``size/rN``, ``voices/rN``, ``name/rN``)."""
    point, repeat = label.split("/")
    return work_dir / "runs" / whisper / f"{mode}-{point}-{repeat}"


def reevaluate(cfg: LiviConfig, work_dir: Path, whisper: str, results: dict, sets: dict, threshold: float) -> None:
    """Score every measured head of ``whisper`` on the evaluation families its record lacks."""
    import torch

    from livi_tasks.models.encoder import LiviHead

    for mode in ("sizes", "voices", "ablation"):
        for label, run in results.get(mode, {}).get(whisper, {}).items():
            missing = [family for family in sets if family not in run["evaluation"]]
            checkpoint = run_folder(work_dir, whisper, mode, label) / "checkpoint.pt"
            if not missing or not checkpoint.exists():
                continue
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)["best_head"]
            head = (
                LiviHead(**run["head"])
                if "head" in run
                else LiviHead.from_settings(
                    state["cls_query"].shape[-1], state["projection.3.weight"].shape[0], cfg.encoder
                )
            )
            head.load_state_dict(state)
            for family in missing:
                data, kinds = sets[family]
                if data.states.ndim != (4 if "layer_logits" in state else 3):
                    continue  # a layer-mixing head reads the all-layer caches, the others the usual ones
                run["evaluation"][family] = evaluate_head(head, data, cfg, threshold, kinds)
                logging.info("%s %s %s: MAP %.3f", mode, label, family, run["evaluation"][family]["MAP"])


def shipped_scores(cfg: LiviConfig, whisper: str, sets: dict, threshold: float) -> dict:
    """The shipped head of ``whisper`` on every evaluation family, with its identity and recipe."""
    from livi_tasks.models.encoder import head_from_bytes
    from livi_tasks.models.registry import shipped_head

    weights, config, card = shipped_head(whisper)
    head = head_from_bytes(weights, config)
    return {
        "head_sha256": card["head_sha256"],
        "command": card["command"],
        "examples": card["data"].get("examples", card["data"].get("segments")),
        "evaluation": {
            family: evaluate_head(head, data, cfg, threshold, kinds) for family, (data, kinds) in sets.items()
        },
    }


def card_evaluation(shipped: dict, asr_reference: Path | None, whisper: str) -> dict:
    """A model card's ``evaluation`` from ``shipped_scores``: per family the head's MAP (95%
    interval) and vocal filter rates, and where ``asr_reference`` (bench_generalisation's JSON)
    measured ``whisper``'s ASR lyrics on that family, their MAP and the ratio."""
    reference = json.loads(asr_reference.read_text())["whisper"].get(whisper, {}) if asr_reference else {}
    evaluation = {
        "metric": (
            "MAP over every track of a 24-work x 3-version catalogue (+6 hard negatives, +6 instrumentals; the demo: "
            "make demo's catalogue), ranked as the pipeline ranks (centred, chunk re-ranking), "
            "benchmarks/bench_learning_curves.py shipped --card"
        ),
        "measured": time.strftime("%Y-%m-%d"),
    }
    for family, scores in shipped["evaluation"].items():
        entry = {
            "methods": {"livi_audio": scores["MAP"]},
            "livi_audio_ci95": scores["MAP_ci95"],
            "vocal_sung_kept": scores["sung_kept"],
            "vocal_instrumentals_excluded": scores["instrumentals_excluded"],
        }
        if family in reference:
            asr = reference[family]["methods"]["lyrics_asr"]["MAP"]
            entry["methods"]["lyrics_asr"] = asr
            entry["asr_free_over_asr_lyrics"] = scores["MAP"] / asr
            entry["lyrics_asr_source"] = asr_reference.name
        evaluation[family] = entry
    return evaluation


def markdown(results: dict, families: list[str]) -> str:
    """The results as BENCHMARKS.md tables: MAP [95% interval] per evaluation family."""

    def cell(run: dict, family: str) -> str:
        scores = run["evaluation"].get(family)
        if not scores:
            return ""
        low, high = scores["MAP_ci95"]
        return f"{scores['MAP']:.3f} [{low:.2f}, {high:.2f}]"

    lines = []
    if results.get("shipped"):
        lines += ["shipped heads", "", "| " + " | ".join(["whisper", "examples", *families]) + " |"]
        lines.append("|" + "---|" * (len(families) + 2))
        for whisper, run in results["shipped"].items():
            lines.append("| " + " | ".join([whisper, str(run["examples"]), *(cell(run, f) for f in families)]) + " |")
        lines.append("")
    for mode in ("sizes", "voices", "ablation"):
        for whisper, runs in results.get(mode, {}).items():
            key = {"sizes": "works", "voices": "voices", "ablation": "variant"}[mode]
            lines += [f"{mode} ({whisper})", ""]
            lines.append("| " + " | ".join([key, "examples", *families, "best epoch", "train s"]) + " |")
            lines.append("|" + "---|" * (len(families) + 4))
            for label, run in runs.items():
                name = label.split("/")[0] if mode == "ablation" else str(run.get(key, label))
                if "voice_set" in run:
                    name = f"{run['voice_set']} ({run['voices']} voices)"
                row = [name, str(run["examples"]), *(cell(run, f) for f in families)]
                lines.append("| " + " | ".join([*row, str(run["best_epoch"]), f"{run['train_seconds']:.0f}"]) + " |")
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "mode",
        nargs="?",
        default="shipped",
        choices=["sizes", "voices", "ablation", "prepare", "reevaluate", "shipped", "table"],
        help="What to measure (default shipped: the shipped heads; table: print the results as markdown).",
    )
    parser.add_argument("--work-dir", default=str(REPO / "data" / "default-heads"), help="Corpora and caches (reused).")
    parser.add_argument("--whisper", default="base", help="Whisper model whose frozen encoder the heads read.")
    parser.add_argument("--chunk", action="append", default=[], help="SEED:WORKS[:FAMILY] of the training pool.")
    parser.add_argument(
        "--eval", action="append", default=[], help="Evaluation family (default randomised, foreign, demo)."
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000], help="Works per head (sizes).")
    parser.add_argument(
        "--voices",
        nargs="+",
        default=["flite", "espeak-ng:24", "espeak-ng:48", "espeak-ng", "0"],
        help="voices: the voices of each head: K (the first K of a random order, 0: all), ENGINE (all of its "
        "voices) or ENGINE:K (K of them).",
    )
    parser.add_argument(
        "--voice-examples", type=int, default=300, help="voices: training examples per head (the same for every point)."
    )
    parser.add_argument("--repeats", type=int, default=1, help="Draws (and training seeds) per point.")
    parser.add_argument("--variant", action="append", default=[], help="NAME:section.field=value,... (ablation).")
    parser.add_argument(
        "--precision",
        default="fp32",
        help="Frame states of the training chunks: fp32, or bf16 (only on bf16 hardware: emulated, it is 6x slower).",
    )
    parser.add_argument("--augment", type=int, default=0, help="Augmented copies of the training chunks to add.")
    parser.add_argument(
        "--all-layers",
        action="store_true",
        help="ablation: cache every encoder block's output and train heads that learn a mix of them",
    )
    parser.add_argument(
        "--segment-style",
        action="store_true",
        help="ablation: train on the former recipe's examples (30 s segments around the sung regions, every frame "
        "pooled; caches of `cache/<chunk>/segments.parquet`) instead of one-pass chunks",
    )
    parser.add_argument("--set", action="append", default=[], help="Config override section.field=value (all heads).")
    parser.add_argument(
        "--card", action="store_true", help="shipped: write the scores into the shipped head's card `evaluation`."
    )
    parser.add_argument(
        "--asr-reference",
        type=Path,
        help="shipped --card: a bench_generalisation.py result whose ASR-lyrics MAP (same catalogues) goes beside.",
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "learning_curves.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    work_dir, out = Path(args.work_dir), Path(args.out)
    if args.mode == "table":
        print(
            markdown(json.loads(out.read_text()), args.eval or ["randomised", "broad", "foreign", "foreign2", "demo"])
        )
        return
    cfg = load_config(overrides=parse_overrides(args.set), environ={})
    chunks = [Chunk(int(seed), int(works), *family) for seed, works, *family in (c.split(":") for c in args.chunk)]
    for family in args.eval:
        if family != "demo" and family not in FAMILIES and family not in SONG_FAMILIES:
            raise SystemExit(f"--eval: unknown family {family!r}")
    load_before = os.getloadavg()
    started = time.perf_counter()
    if not args.segment_style:
        for chunk in chunks:
            prepare_chunk(cfg, chunk, work_dir, (args.whisper,), args.precision, args.augment, args.all_layers)
    families = args.eval or ["randomised", "foreign", "demo"]
    sets, threshold = evaluation_sets(cfg, work_dir, args.whisper, families, args.all_layers)
    if args.mode == "prepare":
        return
    results = json.loads(out.read_text()) if out.exists() else {}
    if args.mode == "reevaluate":
        reevaluate(cfg, work_dir, args.whisper, results, sets, threshold)
        out.write_text(json.dumps(results, indent=2) + "\n")
        plot(results, out.with_suffix(".png"))
        return
    if args.mode == "shipped":
        shipped = {**shipped_scores(cfg, args.whisper, sets, threshold), **machine_facts(load_before)}
        results.setdefault("shipped", {})[args.whisper] = shipped
        out.write_text(json.dumps(results, indent=2) + "\n")
        if args.card:
            card_path = SHIPPED_DIR / args.whisper / "card.json"
            card = json.loads(card_path.read_text())
            if card["head_sha256"] != shipped["head_sha256"]:
                raise SystemExit(f"--card: {card_path} no longer describes the head just scored")
            card["evaluation"] = card_evaluation(shipped, args.asr_reference, args.whisper)
            write_bytes_atomic(card_path, (json.dumps(card, indent=2) + "\n").encode())
        return
    runs = results.setdefault(args.mode, {}).setdefault(args.whisper, {})

    def record(label: str, compute) -> None:
        if label in runs:
            logging.info("%s: already measured", label)
            return
        runs[label] = compute()
        logging.info("%s: %s", label, json.dumps({f: e["MAP"] for f, e in runs[label]["evaluation"].items()}))
        results.update(machine_facts(load_before, precision=args.precision))
        results["pool"] = [c.__dict__ for c in chunks]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        if "sizes" in results:
            plot(results, out.with_suffix(".png"))

    pool = pool_works(work_dir, chunks, args.whisper) if chunks else None
    for repeat in range(args.repeats):
        seeded = cfg.model_copy(update={"encoder": cfg.encoder.model_copy(update={"seed": repeat})})
        rng = np.random.default_rng(repeat)
        if args.mode == "sizes":
            works = rng.permutation(sorted(pool["work"].unique()))
            for size in args.sizes:
                if size > len(works):
                    logging.warning("sizes: %d works asked, the pool has %d", size, len(works))
                    continue
                chosen = set(works[:size])
                pairs, _ = training_pairs(work_dir, chunks, args.whisper, selection(chosen))
                folder = run_folder(work_dir, args.whisper, "sizes", f"{size}/r{repeat}")
                record(f"{size}/r{repeat}", lambda: {"size": size, **score(seeded, pairs, folder, sets, threshold)})
        elif args.mode == "voices":
            voices = rng.permutation(sorted(pool["voice"].unique()))
            for spec in args.voices:
                allowed = voice_set(spec, voices)
                sung = pool[pool["voice"].isin(allowed)]
                if len(sung) < args.voice_examples:
                    logging.warning("voices %s: %d examples, %d asked", spec, len(sung), args.voice_examples)
                    continue
                examples = sung.sample(args.voice_examples, random_state=repeat)
                pairs, _ = training_pairs(work_dir, chunks, args.whisper, rows_selection(examples))
                label = f"{spec}/r{repeat}"
                folder = run_folder(work_dir, args.whisper, "voices", label)
                measured = {"voices": len(allowed), "voice_set": spec}
                record(label, lambda: {**measured, **score(seeded, pairs, folder, sets, threshold)})
        else:
            for spec in args.variant:
                name, _, settings = spec.partition(":")
                overrides = parse_overrides([pair for pair in settings.split(",") if pair])
                variant = load_config(overrides={**parse_overrides(args.set), **overrides}, environ={})
                variant = variant.model_copy(update={"encoder": variant.encoder.model_copy(update={"seed": repeat})})
                pairs = (
                    segment_style_pairs(work_dir, chunks, args.whisper)
                    if args.segment_style
                    else training_pairs(work_dir, chunks, args.whisper, None, args.augment, args.all_layers)[0]
                )
                folder = run_folder(work_dir, args.whisper, "ablation", f"{name}/r{repeat}")
                record(f"{name}/r{repeat}", lambda: {"variant": spec, **score(variant, pairs, folder, sets, threshold)})
    logging.info("done in %.0f s", time.perf_counter() - started)


if __name__ == "__main__":
    main()
