"""Dataset CLI: ``python -m nas_lth.data list`` and
``python -m nas_lth.data info NAME [--data-dir D] [--seed S] [--option KEY=VALUE ...] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import ArgumentParser, UserError, cli_entry
from . import DATASETS, dataset_names, load_dataset


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="python -m nas_lth.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list registered datasets")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    info = sub.add_parser("info", help="load a dataset and describe its splits")
    info.add_argument("name", help="dataset name (see `list`)")  # not `choices`: our error is one line
    info.add_argument(
        "--data-dir", default=None, help="directory holding <dataset>/<file> (else $NAS_LTH_DATA)"
    )
    info.add_argument("--seed", type=int, default=0, help="seed of the validation hold-out")
    info.add_argument("--val-size", type=int, default=None, help="validation hold-out (default: per dataset)")
    info.add_argument("--no-verify", action="store_true", help="skip the SHA-256 check of local files")
    info.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset option, repeatable (e.g. representation=tokens, max_len=128 for the Reuters datasets)",
    )
    info.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        rows = {n: DATASETS[n].description for n in dataset_names()}
        if args.json:
            print(json.dumps(rows))
        else:
            width = max(map(len, rows))
            print("\n".join(f"{n:<{width}}  {d}" for n, d in rows.items()))
        return 0

    ds = load_dataset(
        args.name,
        args.data_dir,
        seed=args.seed,
        val_size=args.val_size,
        verify=not args.no_verify,
        options=parse_options(args.option),
    )
    report = {
        "name": ds.name,
        "sizes": ds.sizes(),
        "num_classes": ds.num_classes,
        "input_shape": list(ds.input_shape),
        "multilabel": ds.multilabel,
        "seed": args.seed,
        "files": ds.meta.get("files", []),
        "mean": ds.meta.get("mean"),
        "std": ds.meta.get("std"),
        "options": ds.meta.get("options", {}),
        "vocab_size": ds.meta.get("vocab_size"),
    }
    if args.json:
        print(json.dumps(report))
    else:
        s = report["sizes"]
        print(f"dataset      {ds.name}")
        print(f"splits       train {s['train']}  val {s['val']}  test {s['test']}  (seed {args.seed})")
        print(f"classes      {ds.num_classes}")
        print(f"input shape  {tuple(ds.input_shape)}")
        print(f"multilabel   {ds.multilabel}")
        if report["options"]:
            print(f"options      {' '.join(f'{k}={v}' for k, v in report['options'].items())}")
        if report["vocab_size"] is not None:
            print(f"vocabulary   {report['vocab_size']} ids (0 = padding, 1 = unknown)")
        if "cache" in ds.meta:
            print(f"cache        {ds.meta['cache']} ({'hit' if ds.meta.get('cache_hit') else 'written'})")
        print(f"files        {', '.join(report['files']) or '(bundled, no files)'}")
    return 0


def parse_options(items: list[str]) -> dict:
    """``["representation=tokens", "max_len=128"]`` -> ``{"representation": "tokens", "max_len": 128}``:
    integers, then floats, then true/false, else the text."""
    out: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--option {item!r}: expected KEY=VALUE, e.g. --option representation=tokens")
        out[key] = _scalar(text.strip())
    return out


def _scalar(text: str):
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


if __name__ == "__main__":
    sys.exit(main())
