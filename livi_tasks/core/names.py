"""Catalogue names are folder names in the artifact store: this rule keeps them from climbing out
of the store root. Imports nothing heavy, so that the DAGs' trigger forms validate by the same rule."""

CATALOGUE_NAME_CHARS = "A-Za-z0-9._-"  # a regular-expression character class
CATALOGUE_NAME_PATTERN = rf"^[A-Za-z0-9][{CATALOGUE_NAME_CHARS}]{{0,99}}$"
CATALOGUE_NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100 characters"
