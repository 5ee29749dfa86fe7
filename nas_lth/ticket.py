"""``python -m nas_lth.ticket RECIPE.yaml``: run one ticket recipe and print each round.

Prints a table (or ``--json``: one JSON record per round and variant) with weights remaining,
validation/test accuracy, the early-stop iteration and the mask digest.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import torch

from nas_lth import plugins
from nas_lth.data import load_dataset
from nas_lth.data.load import get_spec, resolve_options
from nas_lth.device import pick_device
from nas_lth.errors import ArgumentParser, DataError, UserError, cli_entry
from nas_lth.estimation import RoundResult, TicketRun, load_recipe
from nas_lth.pruning import REINIT_VARIANTS

JSON_KEYS = ("round", "weights_remaining", "val_acc", "test_acc", "early_stop_iter", "mask_digest")


def _fmt(v, spec):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _print_row(row: RoundResult, as_json: bool) -> None:
    rec = row.record()
    if as_json:
        head = {k: rec.get(k) for k in JSON_KEYS}
        env = {"torch_threads": torch.get_num_threads(), "torch_version": torch.__version__}
        print(json.dumps({**head, **{k: v for k, v in rec.items() if k not in head}, **env}), flush=True)
        return
    print(
        f"{rec['round']:>5}  {rec['variant']:<15} {100 * rec['weights_remaining']:>7.2f}%  "
        f"{_fmt(rec.get('val_acc'), '.4f'):>7}  {_fmt(rec.get('test_acc'), '.4f'):>8}  "
        f"{_fmt(rec.get('test_acc_at_early_stop'), '.4f'):>8}  {rec['early_stop_iter']:>10}  "
        f"{rec['mask_digest']}  {rec['status']}",
        flush=True,
    )


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m nas_lth.ticket", description=__doc__.splitlines()[0])
    p.add_argument("recipe", help="recipe YAML file (every key: docs/spaces.md)")
    p.add_argument("--data-dir", help="folder with the dataset files (default: $NAS_LTH_DATA, else download)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--controls", nargs="*", default=[], choices=REINIT_VARIANTS,
                   help="also train these reinit variants on the same masks each round")
    p.add_argument("--json", action="store_true", help="one JSON record per round on stdout")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="a module to import first (repeatable): where your models, datasets or criteria are "
                   "registered")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: torch's); results depend on it, so it is printed")
    return p


def _load_data(recipe, source: str, data_dir: str | None, device):
    """The recipe's dataset; an option or a validation size that does not fit it names the file and key."""
    try:
        resolve_options(get_spec(recipe.dataset), recipe.dataset_options or None)
    except UserError as exc:
        raise UserError(f"{source}: dataset_options: {exc}") from None
    try:
        return load_dataset(recipe.dataset, data_dir, seed=recipe.seed, val_size=recipe.val_size,
                            device=device, options=recipe.dataset_options or None)
    except DataError:
        raise
    except UserError as exc:
        if recipe.val_size is None:
            raise
        raise UserError(f"{source}: val_size: {exc}") from None


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads: {args.threads} is not allowed; give a thread count >= 1")
        torch.set_num_threads(args.threads)
    plugins.load(args.plugin)  # before the recipe: its names are checked against the registries
    recipe = load_recipe(args.recipe)
    device = pick_device(args.device)
    data = _load_data(recipe, args.recipe, args.data_dir, device)
    if not args.json:
        print(f"# {recipe.model} on {recipe.dataset} ({device}): criterion={recipe.criterion} "
              f"stop_at={recipe.stop.label()} rounds={recipe.rounds} reinit={recipe.reinit}; "
              f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)", flush=True)
        print(f"{'round':>5}  {'variant':<15} {'weights':>8}  {'val_acc':>7}  {'test_acc':>8}  "
              f"{'test@es':>8}  {'early_stop':>10}  {'mask_digest':<16}  status", flush=True)
    run = TicketRun(recipe, data, device=device, controls=tuple(args.controls),
                    on_round=lambda row: _print_row(row, args.json))
    rows = run.run()
    return 0 if all(r.status == "completed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
