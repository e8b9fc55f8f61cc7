import pytest
from livi_testing import write_tone

from livi_tasks.core.store import ArtifactMissing, ArtifactStore
from livi_tasks.stages.catalogue import ingest_catalogue
from livi_tasks.stages.lineage import fingerprint


@pytest.fixture
def ingested(cfg, tmp_path):
    write_tone(tmp_path / "cat" / "w1" / "a.wav")
    return ingest_catalogue(cfg, tmp_path / "cat")["catalogue"]


def test_config_change_rekeys_the_stage_and_everything_below(cfg, ingested):
    store = ArtifactStore(cfg.store.root)
    before = {stage: fingerprint(cfg, store, ingested, stage) for stage in ("vocal", "segments", "transcribe", "text")}
    changed = cfg.model_copy(update={"segments": cfg.segments.model_copy(update={"max_pad_s": 3.0})})
    after = {stage: fingerprint(changed, store, ingested, stage) for stage in before}
    assert before["vocal"] == after["vocal"]
    assert all(before[s] != after[s] for s in ("segments", "transcribe", "text"))


def test_replacing_the_vocal_head_file_rekeys_downstream(cfg, ingested, tmp_path):
    store = ArtifactStore(cfg.store.root)
    head = tmp_path / "head.pt"
    head.write_bytes(b"one")
    with_head = cfg.model_copy(
        update={"vocal": cfg.vocal.model_copy(update={"method": "trained_head", "head_path": str(head)})}
    )
    first = fingerprint(with_head, store, ingested, "segments")
    head.write_bytes(b"two")
    assert fingerprint(with_head, store, ingested, "segments") != first


def test_replacing_the_whisper_checkpoint_rekeys_transcripts_and_below(cfg, ingested, tmp_path):
    store = ArtifactStore(cfg.store.root)
    checkpoint = tmp_path / "whisper.pt"
    checkpoint.write_bytes(b"one")
    # Musicnn finds the vocals here: the default detector reads the checkpoint's own states.
    with_file = cfg.model_copy(
        update={
            "transcribe": cfg.transcribe.model_copy(update={"whisper_model": str(checkpoint)}),
            "vocal": cfg.vocal.model_copy(update={"method": "zero_shot"}),
        }
    )
    first = {
        stage: fingerprint(with_file, store, ingested, stage)
        for stage in ("segments", "transcribe", "text", "features")
    }
    checkpoint.write_bytes(b"other weights")
    second = {stage: fingerprint(with_file, store, ingested, stage) for stage in first}
    assert first["segments"] == second["segments"]
    assert first["transcribe"] != second["transcribe"] and first["text"] != second["text"]
    assert first["features"] != second["features"]


def test_int8_inference_rekeys_what_reads_encoder_states_but_not_the_trained_model(cfg, ingested):
    from livi_tasks.stages.train_encoder import model_fingerprint

    store = ArtifactStore(cfg.store.root)
    int8 = cfg.model_copy(update={"encoder": cfg.encoder.model_copy(update={"inference_precision": "int8"})})
    assert cfg.vocal.method == "encoder_probe"
    for stage in ("vocal", "segments", "transcribe", "embed"):
        assert fingerprint(cfg, store, ingested, stage) != fingerprint(int8, store, ingested, stage), stage
    musicnn = {"vocal": cfg.vocal.model_copy(update={"method": "zero_shot"})}
    assert fingerprint(cfg.model_copy(update=musicnn), store, ingested, "vocal") == fingerprint(
        int8.model_copy(update=musicnn), store, ingested, "vocal"
    )
    inputs = ({"id": "w"}, {"name": "t"}, [])
    assert model_fingerprint(cfg.encoder, *inputs) == model_fingerprint(int8.encoder, *inputs)


def test_unknown_catalogue_says_to_ingest(cfg):
    with pytest.raises(ArtifactMissing, match="livi ingest"):
        fingerprint(cfg, ArtifactStore(cfg.store.root), "nothing", "vocal")
