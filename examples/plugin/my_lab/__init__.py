"""A lab's own parts for nas_lth: see parts.py."""
