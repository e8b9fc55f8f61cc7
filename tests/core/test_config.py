import pytest

from livi_tasks.core.config import ConfigError, load_config, parse_overrides


def test_precedence_yaml_env_overrides(tmp_path):
    path = tmp_path / "livi.yaml"
    path.write_text("ingest:\n  shard_size: 5\nvocal:\n  min_track_vocalness: 0.3\n")
    cfg = load_config(path, environ={"LIVI__INGEST__SHARD_SIZE": "7"})
    assert cfg.ingest.shard_size == 7
    assert cfg.vocal.min_track_vocalness == 0.3
    cfg = load_config(
        path, overrides=parse_overrides(["ingest.shard_size=9"]), environ={"LIVI__INGEST__SHARD_SIZE": "7"}
    )
    assert cfg.ingest.shard_size == 9


@pytest.mark.parametrize(
    "overrides, field",
    [
        (["vocal.min_track_vocalness=1.5"], "vocal.min_track_vocalness"),
        (["ingest.shard_size=zero"], "ingest.shard_size"),
        (["encoder.nonsense=1"], "encoder.nonsense"),
        (["vocal.method=trained_head"], "vocal"),
        (["ingest.max_duration_s=0.5"], "ingest"),
        (["serve.port=70000"], "serve.port"),
        (["serve.token=tooshort"], "serve.token"),
        (["serve.query_threads=0"], "serve.query_threads"),
        (["index_backend.name=qdrant"], "index_backend.name"),
        (["index_backend.milvus_collection_prefix=bad-name"], "index_backend.milvus_collection_prefix"),
    ],
)
def test_invalid_values_name_the_field(overrides, field):
    with pytest.raises(ConfigError) as excinfo:
        load_config(overrides=parse_overrides(overrides), environ={})
    message = str(excinfo.value)
    assert message.startswith(field + ":")
    assert "\n" not in message


def test_fingerprint_tracks_values_and_upstream():
    base = load_config(environ={})
    changed = load_config(overrides={"segments": {"max_pad_s": 5}}, environ={})
    assert base.segments.fingerprint("x") != changed.segments.fingerprint("x")
    assert base.segments.fingerprint("x") == load_config(environ={}).segments.fingerprint("x")
    assert base.segments.fingerprint("x") != base.segments.fingerprint("y")


def test_bad_yaml_file_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml", environ={})


def test_a_token_is_read_as_written_and_never_printed():
    cfg = load_config(environ={"LIVI__SERVE__TOKEN": "0123456789012345", "LIVI__INDEX_BACKEND__MILVUS_URI": ""})
    assert cfg.serve.token.get_secret_value() == "0123456789012345"  # digits stay a string
    assert "0123456789012345" not in repr(cfg) and "0123456789012345" not in str(cfg.model_dump(mode="json"))
    assert cfg.index_backend.milvus_uri is None  # an empty URI: milvus-lite
