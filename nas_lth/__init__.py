"""nas_lth: lottery tickets found by a neural-architecture-style search.

The package is split the way the NAS survey splits a search: ``space`` (what may be searched),
``strategy`` (how: Ray Tune + Optuna) and ``estimation`` (how good a candidate is: the ticket
procedure), over a substrate of ``data``, ``models`` and ``pruning``; ``experiment`` keeps the experiment
folder, ``store``, ``report`` and ``export`` read what a search produced. docs/design.md draws the rooms and
their floors.
"""

__version__ = "0.1.0"
