"""``python -m nas_lth.export EXPERIMENT_DIR (--trial ID | --best) [-o ticket.pt]``

Writes a trial's trained ticket (packed mask bits, surviving weights, recipe and provenance) to one
file that ``nas_lth.export.load(path)`` turns back into a ``torch.nn.Module``. ``--compact -o name.pt2``
writes a ``torch.export`` program instead (``torch.export.load(path).module()``; it must be a ``.pt2`` name,
and a ticket's must not). ``--verify`` reloads
the written file, evaluates it on the trial's test split and compares with the recorded metrics.
``--list`` shows the trials whose tickets are stored.
"""

from __future__ import annotations

import io
import math
import os
import posixpath
import sys
import uuid

import torch

from nas_lth import plugins
from nas_lth.device import pick_device
from nas_lth.errors import ArgumentParser, UserError, cli_entry
from nas_lth.export import (
    WEIGHT_SETS,
    RawInput,
    evaluate_raw,
    evaluate_ticket,
    export_trial,
    load,
    recorded,
    save,
    ticket_data,
    ticket_path,
    trials_of,
)
from nas_lth.export.compact import compact, count_macs, example_input, load_program, parameters, save_program
from nas_lth.export.format import rebuild
from nas_lth.names import valid_name
from nas_lth.store import locate
from nas_lth.store.fs import Location
from nas_lth.store.reader import recorded_plugins

# a reloaded ticket must reproduce the recorded accuracy / micro-F1 exactly (same weights, same data);
# the tolerance only absorbs float rounding of the stored numbers
TOLERANCE = 1e-9


def build_parser():
    p = ArgumentParser(prog="python -m nas_lth.export", description=__doc__.splitlines()[0].strip("`"))
    p.add_argument("experiment", help="experiment directory (local path or s3://, gs:// URI)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", help="trial id (see --list or the trials table)")
    which.add_argument("--best", action="store_true", help="the completed trial with the highest objective")
    which.add_argument("--list", action="store_true", help="list the trials with a stored ticket")
    p.add_argument("-o", "--output", help="output file (default: <experiment>-<trial>.ticket.pt here; with "
                                          "--compact a .pt2 name, default <experiment>-<trial>.compact.pt2)")
    p.add_argument("--weights", default="end", choices=[w.replace("_", "-") for w in WEIGHT_SETS],
                   help="end: after the full budget, what the search measured (default); early-stop: at the "
                        "minimum validation loss")
    p.add_argument("--compact", action="store_true",
                   help="write the ticket without its removed channels as a torch.export program (.pt2; "
                        "torch.export.load(path).module() runs it with torch alone)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--verify", action="store_true", help="reload the file and check its test metrics")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="a module to import first (repeatable): where your models, datasets, criteria or figures "
                   "are registered; the experiment's own plugins are imported too")
    p.add_argument("--data-dir", help="dataset folder for --verify (default: $NAS_LTH_DATA, else download)")
    p.add_argument("--device", default="cpu", help="device for --verify: cpu, cuda, cuda:N, auto")
    return p


def _list(experiment: str) -> int:
    trials = trials_of(experiment)
    if trials.empty:
        print("no trials yet")
        return 0
    uri = locate(experiment).uri
    print(f"{'trial':<14} {'status':<10} {'objective':>9} {'weights':>8}  ticket")
    for _, row in trials.sort_values("objective", ascending=False, na_position="last").iterrows():
        has = row.status == "completed" and ticket_path(uri, row.trial_id).exists()
        obj = "-" if row.objective is None or math.isnan(row.objective) else f"{row.objective:.4f}"
        w = "-" if math.isnan(row.weights_remaining) else f"{100 * row.weights_remaining:.2f}%"
        print(f"{row.trial_id:<14} {row.status:<10} {obj:>9} {w:>8}  {'yes' if has else 'no'}")
    return 0


def _default_output(experiment, trial_id, compact: bool = False) -> str:
    """``<experiment>-<trial>.ticket.pt`` (``.compact.pt2``) in the working directory; both names come from
    stored data, so they must be plain names (no path) or the user names the file."""
    name = f"{experiment}-{trial_id}.{'compact.pt2' if compact else 'ticket.pt'}"
    if not (valid_name(str(experiment)) and valid_name(str(trial_id))):
        raise UserError(f"the ticket's experiment/trial names ({str(experiment)[:60]!r}, {str(trial_id)[:60]!r}) are "
                        "not plain names; give the output file with -o")
    return name


def _check_output_name(output: str | None, compact: bool) -> None:
    """A compact program is a ``.pt2`` file, a ticket is not: ``nas_lth.export.load`` reads tickets and
    ``torch.export.load`` programs, so the name says which reader a file needs."""
    if output is None:
        return
    if compact and not output.endswith(".pt2"):
        raise UserError(f"-o {output}: --compact writes a torch.export program: give it a .pt2 name (e.g. "
                        f"{posixpath.splitext(output)[0]}.pt2); .pt files are tickets, for nas_lth.export.load")
    if not compact and output.endswith(".pt2"):
        raise UserError(f"-o {output}: a .pt2 name is for a compact program (--compact); a ticket file for "
                        "nas_lth.export.load takes another name, e.g. ticket.pt")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    plugins.load([*args.plugin, *recorded_plugins(args.experiment)])
    if args.list:
        return _list(args.experiment)
    _check_output_name(args.output, args.compact)
    weights = args.weights.replace("-", "_")
    device = pick_device(args.device) if args.verify else None
    ticket, row = export_trial(args.experiment, args.trial, best=args.best, weights=weights)
    prov = ticket["provenance"]
    out = args.output or _default_output(prov.get("experiment"), row.trial_id, args.compact)
    if locate(out).exists() and not args.force:
        raise UserError(f"{out}: exists; pass --force to overwrite it or -o to write elsewhere")
    if "://" not in out and os.path.isdir(out):
        raise UserError(f"{out}: is a directory; -o takes a file name")
    part = _partial_name(out)
    try:
        if args.compact:
            size, small, masked = _write_compact(ticket, weights, part, out)
            ok = _verify_compact(part, masked, ticket, args.data_dir) if args.verify else True
        else:
            size = _write(ticket, part, out)
            ok = _verify(part, ticket, weights, args.data_dir, device) if args.verify else True
        if ok:
            part.fs.move(part.path, locate(out).path)
    finally:
        if part.exists():  # a failed write or verification leaves no output file behind
            part.fs.delete_file(part.path)
    if not ok:
        print(f"not written: {out}")
        return 1
    if args.compact:
        print(f"wrote {out} ({size / 1024:.1f} KiB): trial {row.trial_id}, {prov['model']} on {prov['dataset']}, "
              f"{small['params']:,} parameters (dense {small['dense_params']:,}), {small['macs']:,} MACs per example "
              f"(dense {small['dense_macs']:,}), {weights} weights")
        return 0
    print(f"wrote {out} ({size / 1024:.1f} KiB): trial {row.trial_id}, {prov['model']} on {prov['dataset']}, "
          f"{100 * prov['weights_remaining']:.2f}% weights, criterion {prov['criterion']}, round {prov['round']}, "
          f"mask {prov['mask_digest']}, {weights} weights")
    return 0


def _partial_name(out: str):
    """A hidden name next to ``out``: the file is renamed to ``out`` only once it is complete (and verified)."""
    loc = locate(out)
    parent, name = posixpath.split(loc.path)
    hidden = f".{name}.{uuid.uuid4().hex[:8]}.part"
    return Location(loc.fs, posixpath.join(parent, hidden), loc.uri.rsplit("/", 1)[0] + "/" + hidden)


def _write(ticket: dict, part, out: str) -> int:
    try:
        return save(ticket, part.uri)
    except OSError as exc:  # a full disk, a read-only folder, a missing bucket
        raise UserError(f"{out}: cannot write the ticket ({exc.strerror or exc})") from None


def _write_compact(ticket: dict, weights: str, part, out: str):
    """(bytes written, sizes, the masked ticket it was cut from)."""
    masked = rebuild(ticket, weights, out)
    example = example_input(masked, ticket["model"]["input_shape"])
    small = compact(masked, example)
    buf = io.BytesIO()
    save_program(small, example, buf)
    sizes = {"params": parameters(small), "dense_params": parameters(masked),
             "macs": count_macs(small, example), "dense_macs": count_macs(masked, example)}
    try:
        part.write_bytes(buf.getvalue())
    except OSError as exc:
        raise UserError(f"{out}: cannot write the program ({exc.strerror or exc})") from None
    return len(buf.getvalue()), sizes, masked


def _verify_compact(part, masked, ticket: dict, data_dir: str | None) -> bool:
    """The program as written against the masked ticket on the trial's test split (on the CPU, where it was
    exported): the same logits up to float summation order (removing channels changes the order of the
    sums), and their metrics."""
    from nas_lth.estimation.metrics import predict, scores

    program = load_program(io.BytesIO(part.read_bytes()))
    data = ticket_data(ticket, data_dir)
    test = data.test
    with torch.no_grad():
        a, b = predict(program, test.x), predict(masked.cpu(), test.x)
    diff = float((a - b).abs().max())
    flips = int((a.argmax(1) != b.argmax(1)).sum())
    ok = bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5))
    got, want = scores(a, test.y, data.multilabel), scores(b, test.y, data.multilabel)
    for key in ("acc", "micro_f1"):
        print(f"  test_{key:<11} masked ticket {want[key]:.6f}  compact {got[key]:.6f}")
    print(f"  logits: max |diff| {diff:.2e}, {flips} of {len(test.x)} predictions differ")
    print("verified: the compact program computes the masked ticket's outputs" if ok else
          "MISMATCH: the compact program's outputs differ from the masked ticket's")
    return ok


def _verify(part, ticket: dict, weights: str, data_dir: str | None, device) -> bool:
    """Reload the file as written and evaluate it on the trial's split, twice: the bare network on the
    standardised split, and the module ``nas_lth.export.load`` returns on the raw test inputs (the input
    transform the file carries); both must reproduce the recorded metrics."""
    model = load(part.uri, weights=weights)  # raw inputs; a ticket without a transform warns and loads bare
    measured = evaluate_ticket(model, ticket, data_dir, device=device)  # its bare network, standardised split
    want = recorded(ticket, weights)
    ok = _compare(want, measured, "")
    if isinstance(model, RawInput):
        ok &= _compare(want, evaluate_raw(model, ticket, data_dir), "raw inputs, ")
    else:
        print("  (no input transform in this ticket: raw inputs not checked)")
    print("verified: the exported ticket reproduces the recorded metrics" if ok else
          "MISMATCH: the exported ticket does not reproduce the recorded metrics")
    return ok


def _compare(want: dict, measured: dict, label: str) -> bool:
    ok = True
    for key in sorted(k for k in want if k in measured and k.split("_", 1)[1] in ("acc", "micro_f1", "loss")):
        diff = abs(measured[key] - want[key])
        ok &= key.endswith("loss") or diff <= TOLERANCE  # a loss is a float sum: shown, not compared
        print(f"  {label + key:<16} recorded {want[key]:.6f}  measured {measured[key]:.6f}  diff {diff:.2e}")
    return ok

if __name__ == "__main__":
    sys.exit(main())
