"""A compact live progress table for the terminal (Tune's own table shows every config key)."""

from __future__ import annotations

import math
import sys
import time
from collections import Counter

from ray.tune.progress_reporter import ProgressReporter

from nas_lth.experiment.stage import unwrap
from nas_lth.experiment.trial_report import COMPLETED, TrialReport

COLUMNS = ("trial", "criterion", "stop_at", "rounds", "weights", "fidelity", "objective", "status")


def _fmt(v, spec=""):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec) if spec else str(v)


class TableReporter(ProgressReporter):
    def __init__(self, metric_label: str, fixed: dict | None = None, every_s: float = 15.0,
                 max_rows: int = 8, stream=None, within: float | None = None, ladder: bool = False,
                 multi_objective: bool = False):
        self.metric_label = metric_label
        self.multi_objective = multi_objective  # no single best: the line counts tickets, the front is the summary's
        self.within = within  # a sparsest_within search: its best is shown as the weights it keeps
        self.ladder = ladder  # ladder trials: the rounds column is the round the ladder is in, not its cap
        self.fixed = fixed or {}
        self.every_s = every_s
        self.max_rows = max_rows
        self._stream = stream  # None: sys.stdout when printing (Tune pickles the reporter: a notebook's or
        # pytest's stdout object cannot be pickled)
        self._last = 0.0
        self._start = time.monotonic()
        self._total = None

    @property
    def stream(self):
        return getattr(self, "_stream", None) or sys.stdout  # reporters pickled before kept no _stream

    def setup(self, start_time=None, total_samples=None, metric=None, mode=None, **kwargs):
        self._total = total_samples

    def should_report(self, trials, done=False):
        return done or time.monotonic() - self._last >= self.every_s

    def report(self, trials, done, *sys_info):
        self._last = time.monotonic()
        counts = Counter(t.status for t in trials)
        reports = [TrialReport.from_result(t.last_result) for t in trials if t.last_result]
        head = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        total = f"/{self._total}" if self._total and self._total > 0 else ""
        if self.__dict__.get("multi_objective"):  # reporters pickled before kept no multi_objective
            if self.__dict__.get("ladder"):  # every pruned round of a ladder is a ticket of the front
                tail = f"{sum(r.round or 0 for r in reports)} pruned rounds reached"
            else:
                tail = f"{sum(1 for r in reports if r.final and r.status == COMPLETED)} tickets completed"
            tail += " (several objectives: the front is in the summary)"
        else:
            best = max((r.objective for r in reports if r.final and r.status == COMPLETED), default=None)
            tail = f"best full-budget {self.metric_label}: {self._best(best)}"
        print(f"== {time.monotonic() - self._start:.0f}s: {len(trials)}{total} trials ({head}); {tail}",
              file=self.stream)
        running = [t for t in trials if t.status == "RUNNING"]
        shown = running[: self.max_rows]
        if shown:
            rows = [COLUMNS]
            for t in shown:
                r, c = TrialReport.from_result(t.last_result), {**self.fixed, **unwrap(t.config)[0]}
                wr, started = r.weights_remaining, bool(t.last_result)
                rows.append((t.trial_id, _fmt(c.get("criterion")), _fmt(c.get("stop_at")),
                             _fmt(r.round if self.__dict__.get("ladder") else c.get("rounds")),
                             _fmt(None if wr is None else 100 * wr, ".2f") + "%",
                             _fmt(r.fidelity if started else None, ".2g"),
                             _fmt(r.objective if started else None, ".4f"), r.status if started else "starting"))
            widths = [max(len(str(row[i])) for row in rows) for i in range(len(COLUMNS))]
            for row in rows:
                print("   " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)),
                      file=self.stream)
        self.stream.flush()

    def _best(self, best: float | None) -> str:
        """The best objective: the metric's value, or for sparsest_within the weights its score (-log10 of the
        weights remaining; below 0: no ticket within the bound, minus the shortfall) stands for."""
        within = self.__dict__.get("within")  # reporters pickled before kept no within
        if within is None or best is None:
            return _fmt(best, ".4f")
        if best < 0:
            return f"none within the bound yet (closest: {-best:.4f} short)"
        return f"{100 * 10 ** -best:.2f} % of the weights"
