"""A head scored on cached evaluation chunks: per-query outcomes that add up to the MAP, and
version pairs found or missed, on a real generated catalogue and a shipped head."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from livi_tasks.build.chunk_data import encoder_states_of, evaluation_dataset
from livi_tasks.build.head_eval import evaluate_head, query_outcomes, rank_catalogue, version_pairs
from livi_tasks.build.synth.corpus import make_corpus
from livi_tasks.core.config import LiviConfig
from livi_tasks.models.encoder import head_from_bytes
from livi_tasks.models.identity import whisper_identity
from livi_tasks.models.registry import shipped_head
from livi_tasks.models.vocal_probe import load_probe

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_misses  # noqa: E402


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Two works of three versions each (other voices, engines, keys, codecs), an instrumental
    and a hard negative, ranked by the shipped tiny.en head."""
    folder = tmp_path_factory.mktemp("catalogue")
    corpus = make_corpus(
        folder / "corpus", "randomised", works=2, versions=3, seed=4, instrumentals=1, hard_negatives=1
    )
    corpus = corpus.parent
    cfg = LiviConfig()
    probe = load_probe("tiny.en", whisper_identity("tiny.en", cfg.models_dir)["id"])
    data = evaluation_dataset(corpus, folder / "eval", encoder_states_of("tiny.en", cfg.models_dir), probe)
    head = head_from_bytes(*shipped_head("tiny.en")[:2])
    tracks, ranking = rank_catalogue(head, data, cfg, probe.threshold)
    return corpus, tracks, ranking, evaluate_head(head, data, cfg, probe.threshold)


def test_query_outcomes_are_the_terms_of_the_map(scored):
    _, tracks, ranking, scores = scored
    queries = query_outcomes(tracks, ranking)
    assert len(queries) == scores["queries"] == 6  # the hard negative and the instrumental have no version
    assert queries["average_precision"].mean() == pytest.approx(scores["MAP"])
    assert ((queries["first_rank"] == 1).mean()) == pytest.approx(scores["HR@1"])


def test_a_version_pair_is_found_when_it_beats_every_other_work(scored):
    _, tracks, ranking, _ = scored
    pairs = version_pairs(tracks, ranking)
    assert len(pairs) == 6 * 2 and (pairs["query"] != pairs["version"]).all()
    queries = query_outcomes(tracks, ranking).set_index("track_id")
    # Both versions found is exactly a perfect query; neither found is a first version past rank 1.
    found = pairs.groupby("query")["found"].sum()
    assert ((found == 2) == (queries.loc[found.index, "average_precision"] == 1.0)).all()
    assert ((found == 0) == (queries.loc[found.index, "first_rank"] > 1)).all()


def test_a_tie_with_another_work_is_a_miss():
    tracks = pd.DataFrame({"track_id": ["a1", "a2", "b1", "b2"], "work_id": ["a", "a", "b", "b"]})
    ranking = np.array([[1, 0.5, 0.5, 0.1], [0.9, 1, 0.2, 0.1], [0.3, 0.2, 1, 0.8], [0.1, 0.9, 0.7, 1]])
    pairs = version_pairs(tracks, ranking).set_index("query")["found"]
    assert pairs.to_dict() == {"a1": False, "a2": True, "b1": True, "b2": False}


def test_the_misses_are_grouped_by_how_each_version_was_made(scored):
    corpus, tracks, ranking, _ = scored
    attributes = bench_misses.version_attributes(pd.read_csv(corpus / "tracks.csv"))
    assert {"kind", "engine", "format", "transpose", "snr_db"} <= set(attributes.columns)
    assert not {"track_id", "work_id", "family"} & set(attributes.columns)
    assert len(set(attributes["snr_db"]) - {""}) == 3  # a number with many values: tertiles (instrumentals: none)
    queries = query_outcomes(tracks, ranking)
    by_column = bench_misses.map_by_group(queries, attributes)
    assert "kind" not in by_column  # every query is a `version`: one group is no contrast
    formats = by_column["format"]["groups"]
    assert sum(group["queries"] for group in formats.values()) == 6
    weighted = sum(group["MAP"] * group["queries"] for group in formats.values()) / 6
    assert weighted == pytest.approx(queries["average_precision"].mean())
    relations = bench_misses.found_by_relation(version_pairs(tracks, ranking), attributes)
    assert (
        sum(relations["format"][name]["pairs"] for name in ("same", "different") if name in relations["format"]) == 12
    )
