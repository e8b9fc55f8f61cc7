import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from livi_tasks.core.store import ArtifactMissing, ArtifactStore


def test_roundtrip_and_commit(tmp_path):
    store = ArtifactStore(str(tmp_path / "data"))
    artifact = store.artifact("cat", "stage", "shard-00000", "abc")
    assert not artifact.is_complete()
    artifact.write_table("t", pd.DataFrame({"a": [1, 2]}))
    artifact.write_array("x", np.arange(4, dtype=np.float32))
    artifact.write_json("meta", {"k": 1})
    assert not artifact.is_complete()
    artifact.commit({"rows": 2})
    assert artifact.is_complete()
    assert artifact.summary() == {"rows": 2}
    assert artifact.read_table("t")["a"].tolist() == [1, 2]
    assert artifact.read_array("x", mmap=True).tolist() == [0, 1, 2, 3]
    assert artifact.read_json("meta") == {"k": 1}
    assert list(store.complete_artifacts("cat", "stage"))[0].key == artifact.key


def test_fsspec_url_goes_through_the_same_code():
    store = ArtifactStore("memory://livi-test")
    artifact = store.artifact("cat", "stage", "all", "f1")
    artifact.write_array("x", np.ones(3))
    artifact.commit()
    assert artifact.is_complete()
    assert ArtifactStore("memory://livi-test").artifact("cat", "stage", "all", "f1").read_array("x").sum() == 3


def test_names_cannot_escape(tmp_path):
    store = ArtifactStore(str(tmp_path))
    for bad in ("..", "a/b", ""):
        with pytest.raises(ValueError):
            store.artifact(bad, "stage", "all", "f")


def test_require_names_the_missing_stage(tmp_path):
    with pytest.raises(ArtifactMissing, match="run the vocal stage"):
        ArtifactStore(str(tmp_path)).artifact("c", "vocal", "s", "f").require()


WRITER = """
import sys, numpy as np
from livi_tasks.core.store import ArtifactStore
artifact = ArtifactStore(sys.argv[1]).artifact("c", "s", "all", "f")
artifact.write_array("big", np.ones((64, 1 << 20), dtype=np.float32))  # 256 MB: takes a while
artifact.commit()
"""


def test_kill_during_write_leaves_no_partial_artifact(tmp_path):
    root = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)])
    folder = root / "c" / "s" / "all" / "f"
    deadline = time.time() + 60
    while time.time() < deadline and not (
        folder.exists() and any(p.name.startswith(".tmp-") for p in folder.iterdir())
    ):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    artifact = ArtifactStore(str(root)).artifact("c", "s", "all", "f")
    assert not artifact.is_complete()
    assert not artifact.exists("big.npy")


def test_leftover_temporaries_are_removed(tmp_path):
    artifact = ArtifactStore(str(tmp_path)).artifact("c", "s", "all", "f")
    artifact.write_json("kept", {})
    leftover = tmp_path / "c" / "s" / "all" / "f" / ".tmp-dead-writer-x.npy"
    leftover.write_bytes(b"partial")
    artifact.remove_temporaries()
    assert not leftover.exists() and artifact.exists("kept.json")
