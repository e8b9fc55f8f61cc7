"""Song synthesis for training and evaluation corpora beyond the demo's single sound.

Two families of songs, made from disjoint parts (``corpus.FAMILIES``):

- ``randomised``: the training family. Voices from two speech engines (espeak-ng's accents and
  variants, flite's awb and rms), sung along a melody, over backings drawn from four synthesis
  methods, mixed at varied vocal-to-backing ratios with reverb, EQ, compression and lossy codecs.
- ``foreign``: the evaluation-only family. Another speech engine (Festival's kal, kdl, rab and
  slt voices), other instruments and drum kit, another effects chain, another slice of the
  vocabulary with another grammar, and another song structure. Nothing in it is used to train or
  to tune a default.

Modules: ``voices`` (speech engines and singing), ``instruments`` (tones, drums, backings),
``effects`` (room, EQ, compression, codecs), ``lyrics`` (vocabularies and grammars), ``corpus``
(families, planning, rendering, the catalogue writer).
"""
