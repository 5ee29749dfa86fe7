"""Performance estimation: training loop, metrics and the ticket procedure. Knows nothing of Ray."""

# the recipe vocabulary lives below estimation (nas_lth.recipe); re-exported for convenience
from nas_lth.estimation.ticket import RoundResult, TicketRun, first_masks, run_ticket
from nas_lth.estimation.train import Diverged, Trainer, TrainResult
from nas_lth.recipe import Recipe, StopAt, Training, load_recipe, parse_stop_at, recipe_from_dict

__all__ = [
    "Diverged", "Recipe", "RoundResult", "StopAt", "TicketRun", "TrainResult", "Trainer", "Training",
    "first_masks", "load_recipe", "parse_stop_at", "recipe_from_dict", "run_ticket",
]
