"""The Tune trainable: one trial = one ticket recipe (:class:`nas_lth.strategy.trial.Trial`)."""

from __future__ import annotations

from nas_lth.strategy.trial import TrialSpec, objective_metric

__all__ = ["objective_metric", "ticket_trainable"]


def ticket_trainable(config: dict, *, spec: TrialSpec) -> None:
    from nas_lth.strategy.trial import Trial

    Trial(spec, config).run()
