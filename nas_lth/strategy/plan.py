"""Which dense-trajectory snapshots a search space can ask for (so one trajectory serves all)."""

from __future__ import annotations

import hashlib
import json

from nas_lth.estimation.trajectory import trajectory_key
from nas_lth.recipe import Recipe, parse_stop_at


def snapshot_plan(values: dict, recipe: Recipe, iters_per_epoch: int) -> tuple[set[int], set[int]]:
    """(iterations to keep, cadences whose multiples to keep). ``values``: every value ``stop_at``,
    ``rewind_to`` and ``eb_every`` can take in the space (None for a numeric range).

    Early-Bird stopping needs the weights at every check (each ``eb_every`` value the space can take;
    one epoch by default). Stop and rewind points that come from a numeric range (not enumerable) are
    served from the evaluation grid when they fall on it; a trial whose point is missing trains its
    own dense run.
    """
    budget = max(1, int(round(recipe.budget * iters_per_epoch)))
    iters: set[int] = {0}
    grids: set[int] = set()
    stops = values.get("stop_at")
    if stops is None:
        grids.add(recipe.training.eval_every)
    else:
        for value in stops:
            stop = parse_stop_at(value)
            it = stop.iteration(iters_per_epoch, budget)
            if it is None:
                cadences = values.get("eb_every")
                grids.update(int(c) if c else iters_per_epoch for c in cadences or ())
            elif it <= budget:
                iters.add(it)
    rewinds = values.get("rewind_to")
    if rewinds is None:
        grids.add(recipe.training.eval_every)
    else:
        iters.update(int(v) for v in rewinds if 0 <= int(v) <= budget)
    return iters, grids


def plan_key(recipe: Recipe, iters: set[int], grids: set[int]) -> str:
    blob = json.dumps([trajectory_key(recipe), sorted(iters), sorted(grids)]).encode()
    return hashlib.sha256(blob).hexdigest()[:20]
