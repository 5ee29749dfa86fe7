"""Round prefixes of a pruning ladder: what rounds 1..r leave behind, so another ladder can start there.

Round r of a ladder depends on the dense run and on the recipe fields that decide its rounds - criterion,
stopping and rewind points, rates, reinit, seed, training, ... - but not on where the ladder ends (its round
cap, the fields whose role is ``ladder=False``). Two ladders that share those fields share their rounds up to
the shorter one's end, and a ladder stopped by the scheduler can be continued by a later trial of the same
recipe. The state at the end of round r is :meth:`TicketRun.state_dict` there (masks, the next mask's
weights, the rewind point, the tie-break generator, every row so far and the round's ticket weights);
:func:`prefix_key` addresses it by content.
"""

from __future__ import annotations

import hashlib
import json
from typing import Protocol

from nas_lth.recipe import Recipe, ladder_key_fields, roles_of

KEY_VERSION = 1  # bump when what a round's state holds or how it is computed changes


def prefix_key(recipe: Recipe, round_: int, device_kind: str) -> str:
    """The content address of a ladder's state after round ``round_``: the fields its rounds depend on (those
    that do not act in this recipe, e.g. Early-Bird's settings without an Early-Bird stop, left out), the round
    and the device kind (results are bit-identical on one kind, not across kinds)."""
    roles = roles_of(Recipe)
    acting = {n for n in ladder_key_fields() if recipe.applies(roles[n]["applies"])}
    blob = json.dumps([KEY_VERSION, recipe.model_dump(mode="json", include=acting),
                       dict(recipe.effective_prune_rate()), int(round_), str(device_kind)], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class PrefixStore(Protocol):
    """Where a :class:`~nas_lth.estimation.ticket.TicketRun` finds and leaves its round prefixes (the
    experiment's ``prefixes/`` folder in a search)."""

    def load(self, round_: int) -> dict | None:
        """The state after round ``round_`` if some ladder stored it, else None."""

    def store(self, round_: int, state: dict) -> None:
        """Keep the state after round ``round_`` for other ladders (once; a failure must not fail the run)."""
