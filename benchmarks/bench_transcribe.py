"""Transcription and lyrics-embedding benchmark on a synthetic catalogue (2 CPU threads).

Measures, for each Whisper model:
- on a sample of segments: seconds per 30 s segment and WER of openai-whisper's own
  ``whisper.transcribe()`` called per segment (greedy, the reference path), of this project's
  batched decoder greedy at several batch sizes, and of the paper's temperature fallback;
  wall-clock and process CPU seconds (the CPU time is the steadier number on a shared machine);
- the transcription stage over the whole catalogue (greedy by default, see --stage-temperatures):
  kept segments, drop reasons, corpus WER of the kept transcripts against the sung lyrics;
- text-embedding seconds per kept segment and the cover-retrieval metrics of the ASR lyrics
  embeddings alone (tracks without kept lyrics take part with a zero vector: they match nothing).

Segments are cut from the ground-truth vocal regions (tests/ground_truth_segments.py), which
isolates ASR quality from vocal detection. The catalogue is the default demo (``--family demo``,
writes benchmarks/results/transcribe.json) or a song family of livi_tasks.build.synth of the same size
(``--family foreign``: another voice engine, instruments and words, writes transcribe_foreign.json).

    .venv/bin/python benchmarks/bench_transcribe.py [--family demo|randomised|foreign]
        [--models tiny.en base] [--batch-sizes 1 4 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(REPO / "tests"))  # the ground-truth segmenter is shared with the tests

import numpy as np
import pandas as pd
import torch
import whisper
from flop_bound import machine_facts  # noqa: E402  (benchmarks/, the script's folder)
from ground_truth_segments import ground_truth_segments, reference_lyrics

from livi_tasks.build.default_heads import EVALUATION_SEED
from livi_tasks.build.demo import make_demo_catalogue
from livi_tasks.build.synth.corpus import FAMILIES, make_corpus
from livi_tasks.core.config import PAPER_TEMPERATURES, load_config
from livi_tasks.core.metrics import metrics_from_similarity
from livi_tasks.core.metrics_text import corpus_word_error_rate
from livi_tasks.core.store import ArtifactStore
from livi_tasks.models.whisper_weights import cached_whisper
from livi_tasks.stages.lineage import artifact_for
from livi_tasks.stages.text_embed import embed_lyrics, embed_texts, load_text_model
from livi_tasks.stages.transcribe import decode_segments, transcribe_segments

THREADS = 2
WORKS, VERSIONS = 12, 3  # the demo's counts, for every family


class Stopwatch:
    def __enter__(self) -> "Stopwatch":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def per_segment(watch: Stopwatch, count: int) -> dict:
    return {"wall_s": round(watch.wall / count, 3), "cpu_s": round(watch.cpu / count, 3)}


def time_decoders(
    model_name: str, cfg, audio: np.ndarray, segment_ids: list[str], references: list[str], batch_sizes: list[int]
) -> dict:
    """Seconds per segment and WER on a sample: openai's transcribe() vs the batched decoder, greedy
    and paper fallback."""
    model = cached_whisper(model_name, cfg.models_dir)
    greedy = cfg.transcribe.model_copy(update={"temperatures": (0.0,)})
    paper = cfg.transcribe.model_copy(update={"temperatures": PAPER_TEMPERATURES})
    language = paper.language if model.is_multilingual else "en"
    decode_segments(model, audio[:1], greedy, segment_ids[:1])  # warm-up: first calls allocate
    timings = {}
    with Stopwatch() as watch:
        texts = [
            whisper.transcribe(
                model,
                row,
                language=language,
                temperature=0.0,
                condition_on_previous_text=False,
                fp16=False,
                verbose=None,
                compression_ratio_threshold=None,
                logprob_threshold=None,
                no_speech_threshold=None,
            )["text"]
            for row in audio
        ]
    timings["whisper.transcribe_greedy"] = {
        **per_segment(watch, len(audio)),
        "wer": round(corpus_word_error_rate(zip(references, texts)), 4),
    }
    runs = [(f"batched_greedy_{batch}", greedy, batch) for batch in batch_sizes]
    runs.append((f"batched_paper_fallback_{paper.batch_segments}", paper, paper.batch_segments))
    for label, options, batch in runs:
        with Stopwatch() as watch:
            decoded = []
            for start in range(0, len(audio), batch):
                decoded += decode_segments(
                    model, audio[start : start + batch], options, segment_ids[start : start + batch]
                )
        wer = corpus_word_error_rate(zip(references, [d.text for d in decoded]))
        timings[label] = {
            **per_segment(watch, len(audio)),
            "wer": round(wer, 4),
            "fallback_used": sum(d.temperature > 0 for d in decoded),
        }
    return timings


def load_shards(cfg, store: ArtifactStore, catalogue: str, stage: str, shards: list[str], table: str) -> pd.DataFrame:
    return pd.concat(
        [artifact_for(cfg, store, catalogue, stage, shard).read_table(table) for shard in shards], ignore_index=True
    )


def retrieval(cfg, store: ArtifactStore, catalogue: str, shards: list[str], all_tracks: pd.DataFrame) -> dict:
    """Metrics over every ingested track; tracks without lyrics get a zero vector (they rank last, pessimistically)."""
    index = {track: i for i, track in enumerate(all_tracks["track_id"])}
    vectors = None
    for shard in shards:
        artifact = artifact_for(cfg, store, catalogue, "text", shard)
        tracks, embeddings = artifact.read_table("tracks"), artifact.read_array("track_embeddings")
        if vectors is None:
            vectors = np.zeros((len(all_tracks), embeddings.shape[1]), dtype=np.float32)
        vectors[[index[track] for track in tracks["track_id"]]] = embeddings
    metrics = metrics_from_similarity(vectors @ vectors.T, all_tracks["work_id"].tolist()).as_dict()
    return {key: (round(value, 4) if isinstance(value, float) else value) for key, value in metrics.items()}


def run_model(
    model_name: str,
    catalogue: str,
    catalogue_dir: Path,
    data_root: Path,
    batch_size: int,
    temperatures: list[float],
    timing_segments: int,
    batch_sizes: list[int],
) -> dict:
    cfg = load_config(
        overrides={"store": {"root": str(data_root)}, "transcribe": {"whisper_model": model_name}}, environ={}
    )
    store = ArtifactStore(cfg.store.root)
    shards = ground_truth_segments(cfg, catalogue_dir / "manifest.csv", catalogue, store)
    segments = load_shards(cfg, store, catalogue, "segments", shards, "segments")
    first = artifact_for(cfg, store, catalogue, "segments", shards[0])
    sample = first.read_array("audio")[:timing_segments].astype(np.float32)
    references = reference_lyrics(catalogue_dir, segments)
    sample_ids = segments["segment_id"].tolist()[: len(sample)]
    result = {"timing_segments": len(sample)}
    result["decoder_per_segment"] = time_decoders(
        model_name, cfg, sample, sample_ids, [references[i] for i in sample_ids], batch_sizes
    )

    # The catalogue run: the stage as configured except the decoding schedule and batch, given here.
    cfg = cfg.model_copy(
        update={
            "transcribe": cfg.transcribe.model_copy(
                update={"batch_segments": batch_size, "temperatures": tuple(temperatures)}
            )
        }
    )

    with Stopwatch() as watch:
        for shard in shards:
            transcribe_segments(cfg, catalogue, shard, store)
    transcripts = load_shards(cfg, store, catalogue, "transcribe", shards, "transcripts")
    kept = transcripts[transcripts["kept"]]
    result["stage"] = {
        "batch_segments": batch_size,
        "temperatures": temperatures,
        "segments": len(transcripts),
        **per_segment(watch, len(transcripts)),
        "kept": len(kept),
        "dropped": transcripts.loc[~transcripts["kept"], "reason"].value_counts().to_dict(),
        "fallback_used": int((transcripts["temperature"] > 0).sum()),
        "wer_kept": round(corpus_word_error_rate(zip(kept["segment_id"].map(references), kept["text"])), 4),
        "wer_all_segments": round(
            corpus_word_error_rate(zip(transcripts["segment_id"].map(references), transcripts["text"].fillna(""))), 4
        ),
    }

    with Stopwatch() as watch:
        for shard in shards:
            embed_lyrics(cfg, catalogue, shard, store)
    result["text_embedding"] = {**per_segment(watch, max(1, len(kept))), "note": "includes model loading once"}
    ingest = artifact_for(cfg, store, catalogue, "ingest", "all").read_table("tracks")
    result["retrieval_asr_lyrics"] = retrieval(cfg, store, catalogue, shards, ingest)
    result["tracks_with_lyrics"] = int(kept["track_id"].nunique())
    result["tracks"] = len(ingest)

    references_text = [references[s] for s in segments["segment_id"] if references[s]]
    text_model = load_text_model(cfg.text.model)
    with Stopwatch() as watch:
        embed_texts(text_model, references_text, cfg.text.chunk_chars, cfg.text.batch_size)
    result["text_embedding"]["warm"] = per_segment(watch, len(references_text))
    return result


def ground_truth_retrieval(catalogue_dir: Path) -> dict:
    """Upper bound: the same retrieval with the true sung lyrics of each track."""
    lyrics = json.loads((catalogue_dir / "lyrics.json").read_text())["tracks"]
    manifest = pd.read_csv(catalogue_dir / "manifest.csv")
    cfg = load_config(environ={})
    model = load_text_model(cfg.text.model)
    texts = [" ".join(lyrics.get(track, [])) for track in manifest["track_id"]]
    vectors = np.zeros((len(texts), model.get_embedding_dimension()), dtype=np.float32)
    sung = [i for i, text in enumerate(texts) if text]
    vectors[sung] = embed_texts(model, [texts[i] for i in sung], cfg.text.chunk_chars, cfg.text.batch_size)
    metrics = metrics_from_similarity(vectors @ vectors.T, manifest["work_id"].tolist()).as_dict()
    return {key: (round(value, 4) if isinstance(value, float) else value) for key, value in metrics.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"], help="Whisper models to measure")
    parser.add_argument(
        "--batch-sizes", nargs="+", type=int, default=[1, 4, 8], help="encoder batch sizes of the decoder timing"
    )
    parser.add_argument(
        "--stage-batch", type=int, default=None, help="batch_segments of the catalogue run (default: config default)"
    )
    parser.add_argument(
        "--stage-temperatures",
        nargs="+",
        type=float,
        default=[0.0],
        help="decoding schedule of the catalogue run (default greedy: the paper's fallback costs several times more)",
    )
    parser.add_argument("--timing-segments", type=int, default=8, help="segments in the decoder timing sample")
    parser.add_argument(
        "--family",
        choices=["demo", *sorted(FAMILIES)],
        default="demo",
        help="demo: the default demo catalogue (seed 0); randomised or foreign: a song family of the same size",
    )
    parser.add_argument("--catalogue-dir", type=Path, default=None, help="where the catalogue is generated (reused)")
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/transcribe[_FAMILY].json")
    args = parser.parse_args()
    catalogue_dir = args.catalogue_dir or Path(tempfile.gettempdir()) / f"livi-bench-transcribe-{args.family}"
    out = args.out or REPO / "benchmarks" / "results" / (
        "transcribe.json" if args.family == "demo" else f"transcribe_{args.family}.json"
    )

    torch.set_num_threads(THREADS)
    load_before = os.getloadavg()
    started = time.perf_counter()
    if args.family == "demo":
        make_demo_catalogue(catalogue_dir, works=WORKS, versions=VERSIONS, seed=0, instrumentals=3, hard_negatives=3)
        catalogue = (
            f"make_demo_catalogue(seed=0): {WORKS} works x {VERSIONS} versions, 3 instrumentals, 3 hard negatives"
        )
    else:
        make_corpus(catalogue_dir, args.family, WORKS, VERSIONS, EVALUATION_SEED, instrumentals=3, hard_negatives=3)
        catalogue = f"make_corpus({args.family!r}, seed={EVALUATION_SEED}): the demo's counts"
    stage_batch = args.stage_batch or load_config(environ={}).transcribe.batch_segments
    results = {
        "catalogue": catalogue,
        "segments_from": "ground-truth vocal regions (vocals.csv), paper padding rule",
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-transcribe-") as tmp:
        for model_name in args.models:
            results["models"][model_name] = run_model(
                model_name,
                args.family,
                catalogue_dir,
                Path(tmp) / model_name,
                stage_batch,
                args.stage_temperatures,
                args.timing_segments,
                args.batch_sizes,
            )
            print(model_name, json.dumps(results["models"][model_name], indent=1), flush=True)
    results["retrieval_true_lyrics"] = ground_truth_retrieval(catalogue_dir)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results.update(machine_facts(load_before, python=platform.python_version()))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float) + "\n")
    print(f"wrote {out} in {results['total_seconds']} s")


if __name__ == "__main__":
    main()
