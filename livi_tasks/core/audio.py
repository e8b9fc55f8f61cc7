"""Audio decoding: every stage gets mono float32 at 16 kHz through here.

soundfile reads wav, flac, ogg and mp3 without ffmpeg. Files are read in blocks so that a
multi-hour file costs memory in proportion to the configured maximum duration, not its length.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16_000
BLOCK_FRAMES = 1 << 16
SILENCE_PEAK = 1e-4  # about -80 dBFS: nothing audible


class AudioError(ValueError):
    """The file is not usable audio; the message is the reason recorded in quarantine."""


@dataclass(frozen=True)
class AudioProbe:
    duration_s: float
    sample_rate: int
    channels: int
    format: str
    peak: float


def _open(path: str) -> sf.SoundFile:
    # Checked first: libsndfile reports a missing file as "System error", and opening a FIFO blocks.
    if not os.path.isfile(path):
        raise AudioError("not a regular file" if os.path.exists(path) else "missing file")
    try:
        return sf.SoundFile(path)
    except sf.LibsndfileError as exc:
        detail = exc.error_string.strip() or "unknown format"
        # libsndfile's MPEG reader says this of a regular file in which it finds no MPEG frame.
        if "does not exist or is not a regular file" in detail:
            detail = "no decodable audio stream"
        raise AudioError(f"unreadable audio ({detail})") from None
    except RuntimeError as exc:
        raise AudioError(f"unreadable audio ({exc})") from None


def _blocks(handle: sf.SoundFile, max_frames: int | None):
    """Yield float32 (frames, channels) blocks; decoding errors become AudioError."""
    remaining = max_frames
    while remaining is None or remaining > 0:
        want = BLOCK_FRAMES if remaining is None else min(BLOCK_FRAMES, remaining)
        try:
            block = handle.read(want, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"truncated or corrupt audio data ({exc})") from None
        if not len(block):
            return
        if not np.isfinite(block).all():
            raise AudioError("non-finite samples (NaN or inf)")
        yield block
        if remaining is not None:
            remaining -= len(block)


def audio_duration(path: str) -> float:
    """Seconds of audio the file's header announces, without decoding it; AudioError if unreadable."""
    with _open(path) as handle:
        if handle.samplerate <= 0 or handle.channels <= 0:
            raise AudioError("invalid header (no sample rate or channels)")
        return handle.frames / handle.samplerate


def probe_audio(path: str, min_duration_s: float, max_duration_s: float) -> AudioProbe:
    """Decode the whole file once, checking what later stages rely on; raise AudioError if unusable."""
    with _open(path) as handle:
        rate, channels, fmt = handle.samplerate, handle.channels, handle.format.lower()
        if rate <= 0 or channels <= 0:
            raise AudioError("invalid header (no sample rate or channels)")
        limit = int(max_duration_s * rate) + 1
        frames, peak = 0, 0.0
        for block in _blocks(handle, limit):
            frames += len(block)
            peak = max(peak, float(np.abs(block).max()))
    duration = frames / rate
    if frames == 0:
        raise AudioError("empty audio (no samples)")
    if frames >= limit:
        raise AudioError(f"longer than the maximum duration ({max_duration_s:g} s)")
    if duration < min_duration_s:
        raise AudioError(f"too short ({duration:.2f} s < {min_duration_s:g} s)")
    if peak < SILENCE_PEAK:
        raise AudioError("silent (peak below -80 dBFS)")
    return AudioProbe(duration_s=duration, sample_rate=rate, channels=channels, format=fmt, peak=peak)


def load_audio(path: str, max_duration_s: float | None = None, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 at ``sample_rate``; at most ``max_duration_s`` seconds are decoded."""
    with _open(path) as handle:
        source_rate = handle.samplerate
        max_frames = None if max_duration_s is None else int(max_duration_s * source_rate)
        resampler = (
            None if source_rate == sample_rate else soxr.ResampleStream(source_rate, sample_rate, 1, dtype="float32")
        )
        pieces = []
        for block in _blocks(handle, max_frames):
            mono = block.mean(axis=1, dtype=np.float32)
            pieces.append(mono if resampler is None else resampler.resample_chunk(mono))
        if resampler is not None:
            pieces.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    if not pieces:
        raise AudioError("empty audio (no samples)")
    return np.concatenate(pieces).astype(np.float32, copy=False)
