"""What the neural voices shipped as PyPI data packages share: their files, an ONNX session and the
IPA that espeak-ng writes for them (Kokoro-82M in ``kokoro``, Piper's joe in ``piper``)."""

from __future__ import annotations

import importlib.resources
import subprocess
from pathlib import Path


class VoiceMissing(RuntimeError):
    """A voice package is not installed or its files do not match; the message says how to fix it."""


def packaged_file(package: str, name: str, install_hint: str) -> importlib.resources.abc.Traversable:
    """``<package>/data/<name>``; a missing package stops with the pip command that installs it."""
    try:
        return importlib.resources.files(package) / "data" / name
    except ModuleNotFoundError:
        raise VoiceMissing(f"{package} is not installed: {install_hint}") from None


def cpu_session(model: Path):
    """An ONNX Runtime session on one CPU thread: the corpus writer already renders several tracks at once."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def phonemes(text: str, accent: str = "en-us") -> str:
    """espeak-ng's IPA of ``text`` on one line."""
    done = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-v", accent, text], capture_output=True, text=True, check=True, timeout=60
    )
    return " ".join(done.stdout.split())
