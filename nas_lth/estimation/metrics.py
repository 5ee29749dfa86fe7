"""Loss and metrics of a model on a whole split (chunked, no autograd)."""

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


def evaluate(model: nn.Module, split: Split, multilabel: bool = False) -> dict[str, float]:
    """``loss`` and ``acc`` (subset accuracy for multi-label data), plus micro/macro precision,
    recall and F1 for multi-label data (threshold 0.5 on the sigmoid)."""
    logits = predict(model, split.x)
    loss = float(loss_fn(logits, split.y, multilabel))
    if not multilabel:
        acc = float((logits.argmax(1) == split.y).float().mean())
        return {"loss": loss, "acc": acc}
    from sklearn.metrics import precision_recall_fscore_support

    pred = (logits > 0).cpu().numpy()  # sigmoid(z) > 0.5  <=>  z > 0
    true = split.y.cpu().numpy() > 0.5
    out = {"loss": loss, "acc": float((pred == true).all(axis=1).mean())}
    for avg in ("micro", "macro"):
        p, r, f, _ = precision_recall_fscore_support(true, pred, average=avg, zero_division=0)
        out.update({f"{avg}_precision": float(p), f"{avg}_recall": float(r), f"{avg}_f1": float(f)})
    return out
