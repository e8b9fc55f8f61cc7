"""The model layer, over ``core``: Musicnn in PyTorch (and its TensorFlow checkpoint reader),
Whisper checkpoints (``identity`` resolves and hashes them without loading; ``whisper_weights``
loads and converts), the LIVI encoder head, the vocal probe's inference and the model registry
(promoted and shipped heads)."""
