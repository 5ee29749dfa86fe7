"""What the ticket procedure produces and hands to its listeners: one row per round and variant,
and the information that goes with a checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch


@dataclass
class RoundResult:
    round: int
    variant: str  # "dense", or the reinit variant the ticket was trained from
    control: bool  # True for a reinit control that is not the recipe's own variant
    weights_remaining: float
    mask_digest: str
    mask_iter: int | None  # iteration of the previous run at which this ticket's mask was chosen
    early_bird_drawn: bool | None
    status: str  # completed | diverged
    message: str = ""
    iterations: int = 0  # trained in this round's run
    cumulative_iterations: int = 0  # trained by this procedure when the row was finished
    early_stop_iter: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[dict] = field(default_factory=list)
    wall_seconds: float = 0.0

    def record(self) -> dict:
        """Flat row without the curve (CLI --json, Parquet)."""
        d = asdict(self)
        d.pop("curve")
        d.update(d.pop("metrics"))
        return d


@dataclass
class CheckpointInfo:
    round: int
    run: str  # "dense", "traj" (trajectory only) or a reinit variant
    trainer: object | None  # the Trainer of the run in progress (None between runs)
    final: bool  # the evaluated run of the last round: the one the search's fidelity counts


RoundListener = Callable[[RoundResult], None]
EvalRecordListener = Callable[[int, str, dict], None]  # (round, run, eval record)
CheckpointListener = Callable[[dict, CheckpointInfo], None]


def round_plan(recipe, variants: list[str], r: int, ladder: bool = False) -> list[tuple[str, bool, bool]]:
    """The training runs of round ``r``: (run name, picks the next stopping point, produces a row).
    "traj" is a run that only trains up to the next mask (a round that is not evaluated).

    A ladder's ``original`` run picks the next stopping point at its cap too (a snapshot, free): its state after
    the cap is then a prefix a longer ladder continues, and no round runs differently for being the last."""
    if r == 0:
        return [("dense", recipe.rounds > 0, recipe.eval_rounds == "all" or recipe.rounds == 0)]
    evaluate = recipe.eval_rounds == "all" or r == recipe.rounds
    more = r < recipe.rounds
    plan = []
    if "original" in variants and evaluate:
        plan.append(("original", more or ladder, True))
    elif more:
        plan.append(("traj", True, False))
    if evaluate:
        plan += [(v, False, True) for v in variants if v != "original"]
    return plan


def to_device(obj, device: torch.device):
    """Tensors anywhere in nested dicts/lists moved to ``device`` (other values unchanged)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_device(v, device) for v in obj]
    return obj
