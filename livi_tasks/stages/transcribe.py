"""Transcription stage: Whisper ASR on every 30 s vocal segment, with the paper's guards.

Each segment is exactly Whisper's input window, so it is decoded in one pass (no seeking inside the
window, no conditioning on other segments: they are independent). Timestamp tokens are sampled as
in Whisper's training, then dropped from the text. The encoder runs once per batch of
``batch_segments`` segments and its output is reused by every decoding attempt. Decoding is greedy
by default (``transcribe.temperatures``). Given more temperatures it follows the paper's fallback:
the segments whose result is too repetitive (gzip compression ratio above the threshold) or too
unlikely (mean log-probability below the threshold) are decoded again hotter, except when Whisper
judges the window silent; when every temperature fails, the most likely attempt that is not a
repetition loop is kept (openai-whisper keeps the last, hottest one).

The paper's compression threshold of 1.35 is low for sung lyrics, whose repeated lines compress
well, so the fallback decodes most segments again, and a small model's hotter samples are no better
(figures in BENCHMARKS.md, "Transcription"): hence greedy by default. Repetition loops, the failure
the threshold exists for, are caught by the n-gram guard whatever the schedule.

Guards then decide which transcripts are kept (see :func:`transcript_verdict`); dropped rows stay
in the table with ``kept=False`` and the reason, so that the choice can be inspected.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import whisper
from tqdm import tqdm
from whisper.audio import SAMPLE_RATE
from whisper.decoding import DecodingOptions, DecodingResult
from whisper.model import Whisper

from livi_tasks.core.config import LiviConfig, TranscribeConfig
from livi_tasks.core.metrics_text import normalise_text
from livi_tasks.core.store import Artifact, ArtifactStore
from livi_tasks.models.encoder import encode_frames, resolve_device
from livi_tasks.models.whisper_weights import cached_whisper
from livi_tasks.stages.lineage import run_shard_stage

log = logging.getLogger(__name__)

STAGE = "transcribe"
TRANSCRIPT_COLUMNS = [
    "segment_id",
    "track_id",
    "work_id",
    "text",
    "language",
    "avg_logprob",
    "no_speech_prob",
    "compression_ratio",
    "temperature",
    "kept",
    "reason",
]
NGRAM = 3

# Whisper's well-known inventions on music, silence and noise (normalised text). A sentence
# that is nothing but one of these is removed before the remaining words are counted.
HALLUCINATIONS = frozenset(
    normalise_text(phrase)
    for phrase in (
        "Thank you.",
        "Thank you very much.",
        "Thank you so much.",
        "Thanks.",
        "Thanks for watching!",
        "Thank you for watching.",
        "Thank you so much for watching.",
        "Thanks for watching and see you next time.",
        "Please subscribe.",
        "Please subscribe to my channel.",
        "Like and subscribe.",
        "Don't forget to subscribe.",
        "See you next time.",
        "Bye.",
        "Bye bye.",
        "The end.",
        "You",
        "Music",
        "Music playing",
        "Applause",
        "I hope you have a nice day.",
        "Have a nice day.",
        "I'll see you next time.",
        "See you in the next video.",
        "Thank you for listening.",
        "Thanks for listening.",
        "I'm sorry.",
        "Oh.",
        "Okay.",
        "So.",
        "Hmm.",
        "Silence",
        "Subtitles by the Amara.org community",
        "Subtitles by",
        "Subtitles made by the community of Amara.org",
        "Transcribed by",
        "Transcription by castingwords",
        "Captions by",
        "Translated by",
        "Sous-titres réalisés par la communauté d'Amara.org",
    )
)
# Whisper's stock outputs by their shape, for the many wordings the list above cannot hold ("Please
# don't forget to subscribe to my channel.", "Thanks so much for watching, guys!"): each pattern
# needs words that only a video's sign-off or a caption credit has together, so that a lyric that
# shares some of them ("thank you for the music", "I like the way you share") is kept. Matched
# against a whole normalised sentence of at most STOCK_MAX_WORDS words.
STOCK_MAX_WORDS = 16
STOCK_PHRASES = tuple(
    re.compile(pattern)
    for pattern in (
        r"^(and |so |well )?(thank you|thanks)( so much| very much| all| guys| everyone| again)*"
        r"( for (watching|listening|viewing|tuning in|your attention|joining( us)?))?( guys| everyone| again)*$",
        r"\bsubscrib",
        r"\b(like|comment|share|hit|ring|click|smash)\b.*\b(channel|video|videos|bell|button|notification|notifications)\b",
        r"\b(my|our|the|this) (youtube )?channel\b.*\b(check|visit|follow|support|join|watch)\b",
        r"\b(check|visit|follow|support|join) (out )?(my|our) (youtube )?channel\b",
        r"^((i ll|we ll|i will|we will|and|so|ok|okay|bye|alright) )*see you (guys |all |everyone )?"
        r"(next time|(in|on) the next( one| video| episode| time)?)( guys| everyone| bye)*$",
        r"\b(in|on) (the|my|our) (next|last|previous) (video|episode|stream)\b",
        r"^(english )?(subtitles?|captions?|closed captioning|transcri(bed|ption|pt)|translat(ed|ion)"
        r"|sync(ed|hronized)?)( \w+){0,3} (by|from|provided|made|courtesy)\b",
        r"\bamara ?org\b|\bwww\b|\bhttps?\b|\bdot com\b",
        r"^(you|oh|okay|ok|so|hmm|uh|um|mm|bye|bye bye|music|applause|silence|laughter|the end|im sorry)( \1)*$",
    )
)
# Annotations such as [Music], (upbeat music), *applause* and music symbols are never lyrics.
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|[♪♩♫♬#]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class Decoded:
    """The chosen decoding of one segment."""

    text: str
    language: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float


def is_stock_phrase(sentence: str, by_shape: bool = True) -> bool:
    """A sentence that is one of Whisper's known inventions: listed, or (``by_shape``) by its shape."""
    normalised = normalise_text(sentence)
    if normalised in HALLUCINATIONS:
        return True
    return (
        by_shape
        and len(normalised.split()) <= STOCK_MAX_WORDS
        and any(pattern.search(normalised) for pattern in STOCK_PHRASES)
    )


def strip_hallucinations(text: str, by_shape: bool = True) -> str:
    """The text without annotations, music symbols and sentences that are Whisper's stock phrases
    (``by_shape`` False: only the listed ones, the guard before shapes, for comparison)."""
    sentences = _SENTENCE_END.split(_ANNOTATION.sub(" ", text))
    kept = [sentence.strip() for sentence in sentences if not is_stock_phrase(sentence, by_shape)]
    return " ".join(sentence for sentence in kept if sentence)


def repeated_ngram_share(words: Sequence[str], n: int = NGRAM) -> float:
    """Share of the word n-grams that repeat an earlier n-gram of the same text.

    A decoding loop ("la la la ...", or one sentence again and again until the token limit) is
    nearly all repeats; a chorus sung twice among other lines in a 30 s window is well under half.
    """
    grams = [tuple(words[position : position + n]) for position in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def transcript_verdict(
    text: str, no_speech_prob: float, avg_logprob: float, cfg: TranscribeConfig, by_shape: bool = True
) -> tuple[bool, str, str]:
    """(kept, reason, cleaned text) for one decoded segment; reason is "" when kept.

    Reasons, first match wins: ``no_speech`` (Whisper's own silence rule: no-speech probability
    above its threshold and a mean log-probability below its threshold), ``hallucination`` (what
    is left after removing known hallucinations is too short, and something was removed),
    ``too_few_words``, ``repetition_loop`` (more than ``max_repeated_ngram_share`` of the 3-grams
    repeat an earlier one).
    """
    if no_speech_prob > cfg.no_speech_threshold and avg_logprob < cfg.logprob_threshold:
        return False, "no_speech", text
    cleaned = strip_hallucinations(text, by_shape)
    words = normalise_text(cleaned).split()
    if len(words) < cfg.min_words or not words:
        removed = cleaned.split() != text.split()
        return False, "hallucination" if removed else "too_few_words", text
    if repeated_ngram_share(words) > cfg.max_repeated_ngram_share:
        return False, "repetition_loop", text
    return True, "", cleaned


def _needs_fallback(result: DecodingResult, cfg: TranscribeConfig) -> bool:
    """openai-whisper's rule: retry hotter when too repetitive or too unlikely, unless judged silent."""
    if result.no_speech_prob > cfg.no_speech_threshold and result.avg_logprob < cfg.logprob_threshold:
        return False
    return result.compression_ratio > cfg.compression_ratio_threshold or result.avg_logprob < cfg.logprob_threshold


def _best_attempt(attempts: list[DecodingResult], cfg: TranscribeConfig) -> DecodingResult:
    """The most likely attempt, loops excepted: a sentence repeated to the token limit can score high."""
    no_loop = [
        r for r in attempts if repeated_ngram_share(normalise_text(r.text).split()) <= cfg.max_repeated_ngram_share
    ]
    return max(no_loop or attempts, key=lambda result: result.avg_logprob)


def _sampling_seed(segment_ids: Sequence[str], temperature: float) -> int:
    # Sampling at t > 0 is seeded from what is decoded, so a rerun writes the same artifact.
    digest = hashlib.sha256(f"{temperature}|{'|'.join(segment_ids)}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


@torch.no_grad()
def decode_segments(
    model: Whisper, audio: np.ndarray, cfg: TranscribeConfig, segment_ids: Sequence[str]
) -> list[Decoded]:
    """Decode a batch of 30 s windows (n, samples) with the temperature fallback; one result per row."""
    features = encode_frames(model, audio)
    # Half precision on CUDA, as openai-whisper itself decodes there (its layers cast weights to the input).
    fp16 = features.device.type == "cuda"
    if fp16:
        features = features.half()
    language = cfg.language if model.is_multilingual else "en"
    attempts: list[list[DecodingResult]] = [[] for _ in range(len(audio))]
    chosen: dict[int, DecodingResult] = {}
    pending = list(range(len(audio)))
    for temperature in cfg.temperatures:
        options = DecodingOptions(task="transcribe", language=language, temperature=temperature, fp16=fp16)
        with torch.random.fork_rng():
            torch.manual_seed(_sampling_seed([segment_ids[i] for i in pending], temperature))
            results = whisper.decode(model, features[pending], options)
        for index, result in zip(pending, results):
            attempts[index].append(result)
            if not _needs_fallback(result, cfg):
                chosen[index] = result
        pending = [index for index in pending if index not in chosen]
        if not pending:
            break
    for index in pending:
        chosen[index] = _best_attempt(attempts[index], cfg)
    return [
        Decoded(
            text=result.text,
            language=result.language,
            avg_logprob=float(result.avg_logprob),
            no_speech_prob=float(result.no_speech_prob),
            compression_ratio=float(result.compression_ratio),
            temperature=float(result.temperature),
        )
        for result in (chosen[index] for index in range(len(audio)))
    ]


def _decode_guarded(
    model: Whisper, audio: np.ndarray, cfg: TranscribeConfig, segment_ids: list[str]
) -> list[Decoded | str]:
    """Decode a batch; if the batch fails, decode its segments one by one so one bad segment costs only itself."""
    try:
        return list(decode_segments(model, audio, cfg, segment_ids))
    except Exception as exc:  # noqa: BLE001 - a stage records failures instead of crashing
        if len(audio) == 1:
            log.warning("segment %s failed: %s", segment_ids[0], exc)
            return [f"failed: {type(exc).__name__}: {exc}"]
    outcomes: list[Decoded | str] = []
    for row, segment_id in zip(audio, segment_ids):
        outcomes.extend(_decode_guarded(model, row[None], cfg, [segment_id]))
    return outcomes


def transcribe_audio(model: Whisper, segments: pd.DataFrame, audio: np.ndarray, cfg: TranscribeConfig) -> pd.DataFrame:
    """Transcripts table for a segments table and its aligned (n, samples) 16 kHz audio."""
    rows = []
    batch = cfg.batch_segments
    for start in tqdm(range(0, len(segments), batch), desc="transcribe", unit="batch", disable=None):
        chunk = segments.iloc[start : start + batch]
        outcomes = _decode_guarded(
            model, np.asarray(audio[start : start + batch], dtype=np.float32), cfg, chunk["segment_id"].tolist()
        )
        for (_, segment), outcome in zip(chunk.iterrows(), outcomes):
            base = {"segment_id": segment["segment_id"], "track_id": segment["track_id"], "work_id": segment["work_id"]}
            if isinstance(outcome, str):
                rows.append(
                    {
                        **base,
                        "text": "",
                        "language": None,
                        "avg_logprob": np.nan,
                        "no_speech_prob": np.nan,
                        "compression_ratio": np.nan,
                        "temperature": np.nan,
                        "kept": False,
                        "reason": outcome,
                    }
                )
                continue
            kept, reason, text = transcript_verdict(outcome.text, outcome.no_speech_prob, outcome.avg_logprob, cfg)
            rows.append(
                {
                    **base,
                    "text": text,
                    "language": outcome.language,
                    "avg_logprob": outcome.avg_logprob,
                    "no_speech_prob": outcome.no_speech_prob,
                    "compression_ratio": outcome.compression_ratio,
                    "temperature": outcome.temperature,
                    "kept": kept,
                    "reason": reason,
                }
            )
    return pd.DataFrame(rows, columns=TRANSCRIPT_COLUMNS).astype({"kept": bool})


def transcribe_segments(cfg: LiviConfig, catalogue: str, shard: str, store: ArtifactStore | None = None) -> dict:
    """Stage entry: transcribe every segment of one shard."""

    def work(source: Artifact, output: Artifact) -> dict:
        segments = source.read_table("segments")
        audio = source.read_array("audio", mmap=True)
        if len(audio) != len(segments):
            raise ValueError(f"{source.url}: audio has {len(audio)} rows for {len(segments)} segments")
        if len(segments) and audio.shape[1] / SAMPLE_RATE > 30.0:
            log.warning("segments are %.1f s long: Whisper reads only the first 30 s", audio.shape[1] / SAMPLE_RATE)
        if len(segments):
            model = cached_whisper(cfg.transcribe.whisper_model, cfg.models_dir, resolve_device(cfg.encoder.device))
            transcripts = transcribe_audio(model, segments, audio, cfg.transcribe)
        else:
            transcripts = pd.DataFrame(columns=TRANSCRIPT_COLUMNS).astype({"kept": bool})
        output.write_table("transcripts", transcripts)
        reasons = transcripts.loc[~transcripts["kept"].astype(bool), "reason"].value_counts().to_dict()
        return {
            "segments": len(transcripts),
            "kept": int(transcripts["kept"].astype(bool).sum()),
            "tracks_with_lyrics": int(transcripts.loc[transcripts["kept"].astype(bool), "track_id"].nunique()),
            "dropped": {str(reason): int(count) for reason, count in reasons.items()},
            "whisper_model": cfg.transcribe.whisper_model,
        }

    return run_shard_stage(cfg, store, catalogue, STAGE, shard, work)
