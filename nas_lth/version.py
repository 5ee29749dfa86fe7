"""nas_lth's version, at the bottom of the house (recorded in every ticket file); pyproject.toml holds the same."""

__version__ = "0.1.0"
