"""``python -m nas_lth.search [SPACE.yaml]``: search ticket recipes with Ray Tune + Optuna.

Without arguments it runs ``search_spaces/digits_quick.yaml`` (scikit-learn's bundled digits: no
download) on a local Ray instance. Results go to ``<storage>/<name>/trials/*.parquet`` and
``curves/*.parquet``, the trained tickets of completed trials to ``tickets/``;
``python -m nas_lth.report <storage>/<name>`` draws the figures and ``python -m nas_lth.export`` writes a
ticket file.
"""

from __future__ import annotations

import argparse
import signal
import sys
import types
from pathlib import Path

from nas_lth import plugins
from nas_lth.errors import ArgumentParser, cli_entry
from nas_lth.space import load_space

DEFAULT_SPACE = Path(__file__).resolve().parent.parent / "search_spaces" / "digits_quick.yaml"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m nas_lth.search", description=__doc__.splitlines()[0])
    p.add_argument("space", nargs="?", help=f"search-space YAML (default: {DEFAULT_SPACE.name})")
    p.add_argument("--num-samples", type=int, help="number of trials (default: the space's)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as resources allow)")
    p.add_argument("--storage", default="runs", help="local folder or URI (s3://, gs://) for results and "
                   "Tune state; a multi-node run needs storage every node reaches (default: ./runs)")
    p.add_argument("--name", help="experiment name (default: the space's name)")
    p.add_argument("--address", help="Ray cluster to join ('auto' on a `ray up` head); default: local Ray")
    p.add_argument("--resume", action="store_true", help="continue an interrupted experiment")
    p.add_argument("--trust-state", action="store_true",
                   help="with --resume: load Tune's pickled state although this user's key did not sign it (a copy "
                   "from another machine or user, or an experiment made before nas_lth signed its state)")
    p.add_argument("--warm-start", metavar="EXPERIMENT",
                   help="seed the new study with the completed trials of an earlier experiment of a compatible space")
    p.add_argument("--data-dir", help="folder with dataset files (default: $NAS_LTH_DATA, else download)")
    p.add_argument("--seed", type=int, help="searcher seed (default: the space's)")
    p.add_argument("--device", default="auto", help="auto (CUDA when the trial has a GPU), cpu, cuda")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default: the space's)")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractional allowed (e.g. 0.25)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--no-dashboard", action="store_true",
                   help="do not start the Ray dashboard (starts faster, uses less memory)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="a module to import first, on the driver and in every worker: where your models, datasets "
                   "and criteria are registered (repeatable; joins the space's plugins: list)")
    p.add_argument("--progress-every", type=float, default=15.0, help="seconds between progress tables")
    return p


def _sigterm_as_sigint() -> None:
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    plugins.load(args.plugin)  # first: the space names what they register; they join the space's own list
    space = load_space(args.space or DEFAULT_SPACE, plugins=args.plugin)
    from nas_lth.experiment.summary import print_summary
    from nas_lth.strategy import SearchOptions, run_search
    from nas_lth.strategy.preflight import check_options

    name = args.name or space.name
    opts = SearchOptions(
        space=space, name=name, storage=args.storage, num_samples=args.num_samples,
        max_concurrent=args.max_concurrent, address=args.address, resume=args.resume,
        trust_state=args.trust_state,
        data_dir=args.data_dir, seed=args.seed, device=args.device, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, dashboard=not args.no_dashboard, num_cpus=args.num_cpus,
        progress_every_s=args.progress_every, warm_start=args.warm_start,
    )
    check_options(opts)  # before the first line printed; run_search's preflight does the rest
    print(f"nas_lth search '{name}': {space.source} -> {opts.storage}/{name}", flush=True)
    # `ray job stop` and schedulers send SIGTERM: treat it like Ctrl-C, so Tune saves its state for --resume.
    # ray.init() installs its own SIGTERM handler (a plain exit), so ours goes in again once Ray is up.
    _sigterm_as_sigint()

    def on_start(url):
        _sigterm_as_sigint()
        if args.address and "://" not in args.storage:  # only once connected: a failed start prints one error
            print(f"note: --storage {args.storage} is a local path; with --address every node must reach it "
                  "(a shared filesystem), otherwise use s3:// or gs://", file=sys.stderr, flush=True)
        print(f"Ray dashboard: {url}" if url else "Ray dashboard: not running", flush=True)

    resume = (f"python -m nas_lth.search {args.space or ''} --name {name} --storage {args.storage} "
              "--resume").replace("  --", " --")
    try:
        outcome = run_search(opts, on_start=on_start)
    except KeyboardInterrupt:  # a second Ctrl-C while Tune saves after the first one: it skips that save
        print(f"\ninterrupted twice: Tune skipped its last save, so --resume continues from its previous one "
              f"(finished trials are kept): continue with  {resume}", flush=True)
        return 130
    print_summary(outcome)
    if outcome.interrupted:
        print(f"\ninterrupted: continue with  {resume}", flush=True)
        return 130
    return 0


class _CallableModule(types.ModuleType):
    """``nas_lth.search(space, **options)``: the CLI's module is also the Python API's entry point
    (:func:`nas_lth.api.search`)."""

    def __call__(self, space, **options):
        from nas_lth.api import search

        return search(space, **options)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
