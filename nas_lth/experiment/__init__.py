"""The experiment folder's bookkeeping (``<storage>/<experiment>/``): what a search keeps about itself beside
its Parquet tables, and the driver-side and trial-side services that keep it.

- ``folder``, ``record``, ``lease``: the folder's creation, the space it was started with (``space.json``),
  the driver's lease (``driver.lock``);
- ``trial_report``, ``stage``, ``goals``: what a trial tells Tune, which stage it belongs to, whether the
  experiment reached what it asked for;
- ``callback``, ``progress``, ``summary``: one row per finished trial, the live table, the end-of-search
  summary;
- ``memo``, ``broker``, ``tickets``: reuse inside an experiment (finished recipes, the shared dense
  trajectory) and the trained tickets;
- ``journal``, ``restore``: the live Optuna study for ``optuna-dashboard`` and Tune's state where the
  experiment lies now.

It sits below the strategy (which searches) and above the store and estimation (which it writes with and
runs): nothing here chooses what to try next.
"""
