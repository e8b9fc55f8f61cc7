"""Transcription stage: guards, temperature fallback and Whisper tiny.en on the real demo catalogue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ground_truth_segments import (
    SAMPLE_RATE,
    SEGMENT_S,
    cut_segments,
    reference_lyrics,
    sung_lines,
    transcribe_ground_truth,
    vocal_regions,
    write_segments_artifact,
)
from whisper.decoding import DecodingResult

from livi_tasks.core.audio import load_audio
from livi_tasks.core.config import LiviConfig, TranscribeConfig
from livi_tasks.core.metrics_text import corpus_word_error_rate
from livi_tasks.core.store import ArtifactStore
from livi_tasks.stages.catalogue import ingest_catalogue
from livi_tasks.stages.lineage import artifact_for, shard_ids
from livi_tasks.stages.transcribe import (
    TRANSCRIPT_COLUMNS,
    _best_attempt,
    _needs_fallback,
    is_stock_phrase,
    repeated_ngram_share,
    strip_hallucinations,
    transcribe_segments,
    transcript_verdict,
)

GUARDS = TranscribeConfig()
LYRIC = "I will carry the golden river tonight and follow the lonely harbor home"


@pytest.mark.parametrize(
    "text",
    [
        "Thank you.",
        "Thanks for watching!",
        "[Music]",
        "♪ ♪ ♪",
        "Music",
        "(upbeat music)",
        "Subtitles by the Amara.org community",
        "Thank you. Thank you for watching.",
        "♪ Thank you. ♪",
    ],
)
def test_hallucinations_are_dropped(text: str) -> None:
    kept, reason, _ = transcript_verdict(text, no_speech_prob=0.1, avg_logprob=-0.3, cfg=GUARDS)
    assert (kept, reason) == (False, "hallucination")


def test_hallucinated_sentences_are_stripped_from_real_lyrics() -> None:
    kept, reason, text = transcript_verdict(f"♪ {LYRIC}. Thank you for watching! [Music]", 0.1, -0.3, GUARDS)
    assert kept and reason == ""
    assert text == f"{LYRIC}."
    # "thank you" inside a sung line is a lyric, not a hallucination
    assert strip_hallucinations("I want to say thank you for the music") == "I want to say thank you for the music"


STOCK_PHRASES = (
    "Please don't forget to subscribe to my channel.",
    "Thanks so much for watching, guys!",
    "Like, comment and subscribe.",
    "Don't forget to like this video and hit the bell.",
    "Check out my channel for more.",
    "Okay, see you in the next one, bye",
    "I'll see you next time.",
    "Subtitles made by the community of Amara.org",
    "Captions provided by the community",
    "Translated by John Smith",
    "www.example.com",
    "Thanks again!",
    "you you you",
)
# Lyric lines sharing the stock phrases' words: a guard by shape must keep every one.
LYRIC_LINES = (
    "thank you for the music",
    "Thank you for the days",
    "I like the way you share your light",
    "hit the road and share the night",
    "I keep watching the river",
    "tune my channel to the night",
    "see you in my dreams tonight",
    "I will see you soon my darling",
    "the next time you call me",
    "the river translated by the moonlight",
    "the captions of the night were written by the rain",
    "you and you alone",
)


@pytest.mark.parametrize("phrase", STOCK_PHRASES)
def test_stock_phrases_are_caught_by_their_shape(phrase: str) -> None:
    assert is_stock_phrase(phrase)
    kept, reason, _ = transcript_verdict(phrase, no_speech_prob=0.1, avg_logprob=-0.3, cfg=GUARDS)
    assert (kept, reason) == (False, "hallucination")
    kept, _, text = transcript_verdict(f"{LYRIC}. {phrase}", no_speech_prob=0.1, avg_logprob=-0.3, cfg=GUARDS)
    assert kept and text == f"{LYRIC}."  # stripped from a real transcript, which stays


@pytest.mark.parametrize("line", LYRIC_LINES)
def test_lyric_lines_that_share_their_words_are_kept(line: str) -> None:
    assert not is_stock_phrase(line)
    assert strip_hallucinations(line) == line


def test_short_transcripts_are_dropped() -> None:
    assert transcript_verdict("golden river tonight", 0.1, -0.3, GUARDS)[:2] == (False, "too_few_words")
    assert transcript_verdict("", 0.1, -0.3, GUARDS)[:2] == (False, "too_few_words")
    assert transcript_verdict("golden river flows tonight", 0.1, -0.3, GUARDS)[:2] == (True, "")


def test_silence_rule_needs_both_no_speech_and_low_confidence() -> None:
    assert transcript_verdict(LYRIC, no_speech_prob=0.9, avg_logprob=-1.5, cfg=GUARDS)[:2] == (False, "no_speech")
    # confident words over a "silent-looking" window (sung lyrics over music often look so) are kept
    assert transcript_verdict(LYRIC, no_speech_prob=0.9, avg_logprob=-0.4, cfg=GUARDS)[0]


def test_repetition_loops_are_dropped_but_a_repeated_chorus_is_kept() -> None:
    loop = "la la la la la la la la la la la la"
    assert repeated_ngram_share(loop.split()) == pytest.approx(9 / 10)
    assert transcript_verdict(loop, 0.1, -0.3, GUARDS)[:2] == (False, "repetition_loop")
    same_line = ("oh my scarlet sister come open with me " * 4).strip()
    assert transcript_verdict(same_line, 0.1, -0.3, GUARDS)[:2] == (False, "repetition_loop")
    chorus_twice = f"{LYRIC} {LYRIC} and the quiet morning keeps the secret of the wooden bridge"
    assert repeated_ngram_share(chorus_twice.split()) < GUARDS.max_repeated_ngram_share
    assert transcript_verdict(chorus_twice, 0.1, -0.3, GUARDS)[0]
    assert repeated_ngram_share("hello there my friend".split()) == 0.0
    assert repeated_ngram_share(["la", "la"]) == 0.0


def _result(
    avg_logprob: float, compression_ratio: float, no_speech_prob: float = 0.1, temperature: float = 0.0
) -> DecodingResult:
    return DecodingResult(
        audio_features=None,
        language="en",
        text="x",
        avg_logprob=avg_logprob,
        no_speech_prob=no_speech_prob,
        compression_ratio=compression_ratio,
        temperature=temperature,
    )


def test_fallback_rule_follows_openai_whisper() -> None:
    assert not _needs_fallback(_result(-0.5, 1.2), GUARDS)
    assert _needs_fallback(_result(-0.5, 1.5), GUARDS)  # paper threshold 1.35: too repetitive
    assert _needs_fallback(_result(-1.5, 1.2), GUARDS)  # too unlikely
    assert not _needs_fallback(_result(-1.5, 1.2, no_speech_prob=0.9), GUARDS)  # silence: no retry


def test_when_every_temperature_fails_the_most_likely_attempt_wins() -> None:
    greedy, hot = _result(-0.4, 1.6, temperature=0.0), _result(-3.0, 1.1, temperature=1.0)
    assert _best_attempt([greedy, _result(-0.9, 1.5, temperature=0.2), hot], GUARDS) is greedy
    loop = DecodingResult(
        audio_features=None, language="en", text="I love you. " * 20, avg_logprob=-0.1, compression_ratio=9.0
    )
    assert _best_attempt([loop, greedy, hot], GUARDS) is greedy


@pytest.fixture
def probe_segments(cfg: LiviConfig, demo_catalogue: Path) -> tuple[LiviConfig, ArtifactStore, str, list[str]]:
    """One shard holding a silent segment, 30 s of the instrumental track and one sung segment."""
    cfg = cfg.model_copy(update={"transcribe": TranscribeConfig(whisper_model="tiny.en")})
    store = ArtifactStore(cfg.store.root)
    ingest_catalogue(cfg, demo_catalogue, "demo", store)
    shard = shard_ids(store, "demo")[0]
    tracks = artifact_for(cfg, store, "demo", "ingest", shard).read_table("tracks").set_index("track_id")
    instrumental = next(track for track in tracks.index if track.startswith("instrumental"))
    sung = next(track for track in tracks.index if track.startswith("work-"))
    samples = int(SEGMENT_S * SAMPLE_RATE)
    rows, pieces = cut_segments(
        sung,
        tracks.loc[sung, "work_id"],
        load_audio(tracks.loc[sung, "uri"]),
        vocal_regions(sung_lines(demo_catalogue.parent)[sung])[:1],
    )
    rows, pieces = rows[:1], pieces[:1]
    for segment_id, track, audio in (
        ("silence:000", sung, np.zeros(samples, np.float32)),
        (f"{instrumental}:000", instrumental, load_audio(tracks.loc[instrumental, "uri"])[:samples]),
    ):
        rows.append(
            {
                **rows[0],
                "segment_id": segment_id,
                "track_id": track,
                "work_id": tracks.loc[track, "work_id"],
                "start_s": 0.0,
                "end_s": SEGMENT_S,
            }
        )
        pieces.append(np.pad(audio, (0, samples - len(audio))))
    write_segments_artifact(cfg, store, "demo", shard, rows, pieces)
    return cfg, store, shard, [row["segment_id"] for row in rows]


def test_silence_and_instrumental_give_no_kept_transcript(probe_segments) -> None:
    cfg, store, shard, (sung_id, silence_id, instrumental_id) = probe_segments
    summary = transcribe_segments(cfg, "demo", shard, store)
    assert summary["segments"] == 3 and not summary["skipped"]
    transcripts = (
        artifact_for(cfg, store, "demo", "transcribe", shard).read_table("transcripts").set_index("segment_id")
    )
    assert transcripts.loc[silence_id, "kept"] == False  # noqa: E712 - numpy bool
    assert transcripts.loc[instrumental_id, "kept"] == False  # noqa: E712
    assert transcripts.loc[silence_id, "reason"] and transcripts.loc[instrumental_id, "reason"]
    assert transcripts.loc[sung_id, "kept"] == True, transcripts.loc[sung_id].to_dict()  # noqa: E712
    assert transcribe_segments(cfg, "demo", shard, store)["skipped"]


@pytest.fixture(scope="module")
def transcribed(demo_catalogue: Path, tmp_path_factory: pytest.TempPathFactory):
    return transcribe_ground_truth(tmp_path_factory.getbasetemp() / "asr-tiny.en", demo_catalogue, "tiny.en")


def test_demo_catalogue_transcripts(transcribed, demo_catalogue: Path) -> None:
    cfg, store, shards = transcribed
    segments = pd.concat(
        [artifact_for(cfg, store, "demo", "segments", s).read_table("segments") for s in shards], ignore_index=True
    )
    transcripts = pd.concat(
        [artifact_for(cfg, store, "demo", "transcribe", s).read_table("transcripts") for s in shards], ignore_index=True
    )
    assert list(transcripts.columns) == TRANSCRIPT_COLUMNS
    assert transcripts["segment_id"].tolist() == segments["segment_id"].tolist()
    assert set(transcripts.loc[~transcripts["kept"], "reason"]) <= {
        "no_speech",
        "hallucination",
        "too_few_words",
        "repetition_loop",
    }
    kept = transcripts[transcripts["kept"]]
    # every sung track (versions and hard negatives) keeps lyrics; tiny.en is English-only
    assert set(kept["track_id"]) == set(segments["track_id"])
    assert set(kept["language"]) == {"en"}
    references = reference_lyrics(demo_catalogue.parent, segments)
    wer = corpus_word_error_rate(zip(kept["segment_id"].map(references), kept["text"]))
    # Measured 0.38 (17 of 18 segments kept) on this catalogue with tiny.en greedy (seed 7;
    # benchmarks/results/transcribe.json has the seed-0 numbers). Synthetic sung voices over music
    # are hard for tiny.en; 0.6 catches a broken pipeline (keeping hot fallback samples gave 0.57).
    assert wer < 0.6, wer
