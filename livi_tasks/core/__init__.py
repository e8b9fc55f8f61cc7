"""The bottom layer: configuration, the artifact store and its keyed, atomic writes, the stage
runner and the stage table, audio decoding, vectors, metrics and the index. It imports no other
layer of ``livi_tasks`` and loads no model."""
