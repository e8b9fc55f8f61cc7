"""The one way files outside the artifact store are written: to a temporary beside them, then renamed.

Model caches, shipped models, the index files and training checkpoints all go through
``write_atomic``: a reader never sees a partial file, and a killed writer leaves only a hidden
temporary that the next write replaces. (Artifact-store files go through
``ArtifactStore.write_atomic``, which also handles object stores.)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> None:
    """Let ``write`` fill a temporary file in ``path``'s folder, make it durable, rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes files private; these outputs are shared
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    write_atomic(path, lambda temporary: temporary.write_bytes(data))
