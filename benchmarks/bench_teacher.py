"""The teacher on every song family: which 30 s windows keep a transcript, and how true it is.

For a catalogue that retrains on its own audio the teacher is Whisper's transcript (the paper's
path). Each evaluation catalogue (seed 1 of every family; the demo's seed 0) is cut as inference
cuts it, into consecutive 30 s chunks; a chunk holding a sung line (mostly inside it) is a sung
window, a chunk of an instrumental track an instrumental window. Every window is decoded greedily
by the transcription stage's decoder and judged by its guards twice: with the stock-phrase guard
by shape (the default) and with the listed phrases only (the guard before it). Reported per family:
sung and instrumental windows kept, the drop reasons, and for kept sung windows the word recall
(share of the sung words found in the transcript) and the corpus WER against the sung lines.

    .venv/bin/python benchmarks/bench_teacher.py --work-dir data/default-heads [--whisper base]
        [--family randomised ...] [--sung-windows 60]

Writes benchmarks/results/teacher_<whisper>.json.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_learning_curves import evaluation_corpus
from flop_bound import machine_facts

from livi_tasks.build.chunk_data import CHUNK_SECONDS, lines_inside, sung_lines
from livi_tasks.core.audio import load_audio
from livi_tasks.core.config import load_config
from livi_tasks.core.metrics_text import corpus_word_error_rate, normalise_text
from livi_tasks.models.vocal_probe import whole_track_chunks
from livi_tasks.models.whisper_weights import cached_whisper
from livi_tasks.stages.transcribe import decode_segments, transcript_verdict

FAMILIES = ("randomised", "foreign", "broad", "foreign2", "demo")


def windows(corpus: Path, sung_windows: int, seed: int = 0) -> pd.DataFrame:
    """A sample of sung windows and every instrumental window: track, chunk, kind and sung text."""
    manifest = pd.read_csv(corpus / "manifest.csv")
    kinds = pd.read_csv(corpus / "tracks.csv").set_index("track_id")["kind"]
    lines = sung_lines(corpus)
    rows = []
    for track in manifest.itertuples(index=False):
        chunks = int(np.ceil(len(load_audio(str(corpus / track.path))) / (CHUNK_SECONDS * 16_000)))
        for chunk in range(chunks):
            text = " ".join(lines_inside(lines.get(track.track_id, []), chunk * CHUNK_SECONDS, (chunk + 1) * 30.0))
            kind = "instrumental" if kinds[track.track_id] == "instrumental" else ("sung" if text else "")
            if kind:
                rows.append(
                    {"track_id": track.track_id, "path": track.path, "chunk": chunk, "kind": kind, "text": text}
                )
    table = pd.DataFrame(rows)
    sung = table[table.kind == "sung"]
    sample = sung.sample(min(sung_windows, len(sung)), random_state=seed) if len(sung) > sung_windows else sung
    return pd.concat([sample, table[table.kind == "instrumental"]], ignore_index=True)


def word_recall(reference: str, hypothesis: str) -> float:
    said = set(normalise_text(hypothesis).split())
    words = normalise_text(reference).split()
    return float(np.mean([word in said for word in words])) if words else float("nan")


def judge(table: pd.DataFrame, by_shape: bool, cfg) -> dict:
    verdicts = [
        transcript_verdict(row.transcript, row.no_speech_prob, row.avg_logprob, cfg.transcribe, by_shape)
        for row in table.itertuples()
    ]
    kept = np.array([kept for kept, _, _ in verdicts])
    cleaned = [text for _, _, text in verdicts]
    sung = (table.kind == "sung").to_numpy()
    pairs = [(ref, hyp) for ref, hyp, k, s in zip(table.text, cleaned, kept, sung) if k and s]
    reasons = pd.Series([reason for _, reason, _ in verdicts])
    return {
        "sung_windows": int(sung.sum()),
        "sung_kept": float(kept[sung].mean()) if sung.any() else None,
        "instrumental_windows": int((~sung).sum()),
        "instrumental_kept": float(kept[~sung].mean()) if (~sung).any() else None,
        "drop_reasons_sung": reasons[sung & ~kept].value_counts().to_dict(),
        "drop_reasons_instrumental": reasons[~sung & ~kept].value_counts().to_dict(),
        "kept_instrumental_transcripts": [t for t, k, s in zip(cleaned, kept, sung) if k and not s][:10],
        "word_recall_kept": float(np.nanmean([word_recall(ref, hyp) for ref, hyp in pairs])) if pairs else None,
        "wer_kept": corpus_word_error_rate(pairs) if pairs else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default=str(REPO / "data" / "default-heads"), help="Where the catalogues are.")
    parser.add_argument("--whisper", default="base", help="Whisper model of the teacher.")
    parser.add_argument("--family", action="append", choices=FAMILIES, help="Family (repeatable; default all).")
    parser.add_argument("--sung-windows", type=int, default=60, help="Sung windows sampled per family.")
    parser.add_argument("--batch", type=int, default=8, help="Windows per decoder batch.")
    parser.add_argument("--out", default=None, help="Result JSON (default results/teacher_<whisper>.json).")
    args = parser.parse_args()
    load_before = os.getloadavg()
    cfg = load_config(environ={})
    model = cached_whisper(args.whisper, cfg.models_dir)
    out = Path(args.out or REPO / "benchmarks" / "results" / f"teacher_{args.whisper}.json")
    results = json.loads(out.read_text()) if out.exists() else {}
    work_dir = Path(args.work_dir)
    for family in args.family or FAMILIES:
        started = time.perf_counter()
        corpus = evaluation_corpus(work_dir, family)
        table = windows(corpus, args.sung_windows)
        decoded = []
        for start in range(0, len(table), args.batch):
            batch = table.iloc[start : start + args.batch]
            audio = np.stack(
                [whole_track_chunks(load_audio(str(corpus / row.path)))[0][row.chunk] for row in batch.itertuples()]
            )
            ids = [f"{row.track_id}#{row.chunk}" for row in batch.itertuples()]
            decoded += decode_segments(model, audio, cfg.transcribe, ids)
        table["transcript"] = [d.text for d in decoded]
        table["no_speech_prob"] = [d.no_speech_prob for d in decoded]
        table["avg_logprob"] = [d.avg_logprob for d in decoded]
        results[family] = {
            "by_shape": judge(table, True, cfg),
            "listed_only": judge(table, False, cfg),
            "seconds_per_window": round((time.perf_counter() - started) / len(table), 2),
        }
        print(family, json.dumps({k: v for k, v in results[family]["by_shape"].items() if "transcripts" not in k}))
        results.update(machine_facts(load_before, whisper=args.whisper, decoding=list(cfg.transcribe.temperatures)))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
