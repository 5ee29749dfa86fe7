"""Which dense-trajectory snapshots a search space can ask for (so one trajectory serves all)."""

from __future__ import annotations

import hashlib
import json

from nas_lth.estimation.recipe import Recipe, parse_stop_at
from nas_lth.estimation.trajectory import trajectory_key
from nas_lth.space.schema import SearchSpace


def snapshot_plan(space: SearchSpace, recipe: Recipe, iters_per_epoch: int) -> tuple[set[int], set[int]]:
    """(iterations to keep, cadences whose multiples to keep).

    Early-Bird stopping needs the weights at every check (each ``eb_every`` value the space can take;
    one epoch by default). Stop and rewind points that come from a numeric range (not enumerable) are
    served from the evaluation grid when they fall on it; a trial whose point is missing trains its
    own dense run.
    """
    budget = max(1, int(round(recipe.budget * iters_per_epoch)))
    iters: set[int] = {0}
    grids: set[int] = set()
    stops = space.values_of("stop_at")
    if stops is None:
        grids.add(recipe.training.eval_every)
    else:
        for value in stops:
            stop = parse_stop_at(value)
            it = stop.iteration(iters_per_epoch, budget)
            if it is None:
                cadences = space.values_of("eb_every")
                grids.update(int(c) if c else iters_per_epoch for c in cadences or ())
            elif it <= budget:
                iters.add(it)
    rewinds = space.values_of("rewind_to")
    if rewinds is None:
        grids.add(recipe.training.eval_every)
    else:
        iters.update(int(v) for v in rewinds if 0 <= int(v) <= budget)
    return iters, grids


def plan_key(recipe: Recipe, iters: set[int], grids: set[int]) -> str:
    blob = json.dumps([trajectory_key(recipe), sorted(iters), sorted(grids)]).encode()
    return hashlib.sha256(blob).hexdigest()[:20]
