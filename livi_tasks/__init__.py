"""LIVI: lyrics-informed version identification, as a library of idempotent pipeline stages."""

__version__ = "0.1.0"
