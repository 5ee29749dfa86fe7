"""Loss and metrics of a model on a whole split (chunked, no autograd).

Micro/macro precision, recall and F1 are computed for both single-label data (argmax) and multi-label
data (sigmoid > 0.5) from per-class counts in torch - the definitions of scikit-learn's
``precision_recall_fscore_support`` with ``zero_division=0`` (checked in the tests) - so an
evaluation costs no host round trip per class on a GPU.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nas_lth.data.base import Split

EVAL_CHUNK = 4096


def loss_fn(logits: torch.Tensor, y: torch.Tensor, multilabel: bool) -> torch.Tensor:
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, y)
    return F.cross_entropy(logits, y)


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i : i + EVAL_CHUNK]) for i in range(0, x.shape[0], EVAL_CHUNK)])
    finally:
        model.train(was_training)


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    safe = torch.where(den > 0, den, torch.ones_like(den))
    return torch.where(den > 0, num / safe, torch.zeros_like(num))


def prf(pred: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """Micro and macro precision/recall/F1 of boolean (N, C) predictions against boolean targets."""
    tp = (pred & true).sum(0).double()
    fp = (pred & ~true).sum(0).double()
    fn = (~pred & true).sum(0).double()
    out = {}
    for avg, (t, p_, n_) in (("micro", (tp.sum(), fp.sum(), fn.sum())), ("macro", (tp, fp, fn))):
        precision, recall = _ratio(t, t + p_), _ratio(t, t + n_)
        f1 = _ratio(2 * precision * recall, precision + recall)
        out.update({f"{avg}_precision": float(precision.mean()), f"{avg}_recall": float(recall.mean()),
                    f"{avg}_f1": float(f1.mean())})
    return out


def evaluate(model: nn.Module, split: Split, multilabel: bool = False) -> dict[str, float]:
    """``loss``, ``acc`` (subset accuracy for multi-label data) and micro/macro precision, recall, F1."""
    return scores(predict(model, split.x), split.y, multilabel)


def scores(logits: torch.Tensor, y: torch.Tensor, multilabel: bool = False) -> dict[str, float]:
    """:func:`evaluate`'s metrics of logits already computed."""
    loss = float(loss_fn(logits, y, multilabel))
    if multilabel:
        pred, true = logits > 0, y > 0.5  # sigmoid(z) > 0.5  <=>  z > 0
        acc = float((pred == true).all(dim=1).float().mean())
    else:
        classes = logits.shape[1]
        pred = F.one_hot(logits.argmax(1), classes).bool()
        true = F.one_hot(y, classes).bool()
        acc = float((logits.argmax(1) == y).float().mean())
    return {"loss": loss, "acc": acc, **prf(pred, true)}
