"""The pipeline's stages, one module each, over ``core`` and ``models``: ingest (``catalogue``),
vocal, segments, transcribe, text (``text_embed``), features, training (``train_encoder``),
embed (``audio_embed``), baseline, index and query (``retrieval``), evaluate, and the MLflow
tracking of training runs. ``lineage`` keys their artifacts: a stage's config section, its
parent's key and the identities of the models it reads (``models.identity``)."""
