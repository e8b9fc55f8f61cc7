"""The code version that made an artifact or a model file, for model cards and benchmark records."""

from __future__ import annotations

import subprocess
from pathlib import Path


def code_commit() -> str:
    """HEAD of the checkout, marked ``+dirty`` when tracked files differ from it."""
    try:

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, check=True
            ).stdout.strip()

        return git("rev-parse", "HEAD") + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
