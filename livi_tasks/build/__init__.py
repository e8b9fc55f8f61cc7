"""Builders beside the entry points: the synthetic song families (``synth``), the demo catalogue
generator (``demo``) and the recipes that make the shipped models (``default_heads``,
``vocal_probe``). They import the layers below; only entry points, benchmarks and tests import them."""
