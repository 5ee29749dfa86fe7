"""Micro/macro precision, recall and F1 agree with scikit-learn (zero_division=0) for both kinds of data."""

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support

from nas_lth.data.base import Split
from nas_lth.estimation.metrics import evaluate


class Fixed(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[x.long().flatten()]


@pytest.mark.parametrize("multilabel", [False, True])
def test_prf_matches_scikit_learn(multilabel):
    g = torch.Generator().manual_seed(0)
    n, c = 300, 7
    logits = torch.randn(n, c, generator=g)
    if multilabel:
        y = (torch.rand(n, c, generator=g) > 0.7).float()
        y[:, 6] = 0  # a class with no positives: zero_division cases
    else:
        y = torch.randint(0, c - 1, (n,), generator=g)  # class 6 never true
    res = evaluate(Fixed(logits), Split(torch.arange(n).view(n, 1).float(), y), multilabel)
    if multilabel:
        pred, true = (logits > 0).numpy(), y.numpy() > 0.5
        assert res["acc"] == pytest.approx(float((pred == true).all(1).mean()))
    else:
        pred, true = logits.argmax(1).numpy(), y.numpy()
        labels = np.arange(c)
        assert res["acc"] == pytest.approx(float((pred == true).mean()))
        assert res["micro_f1"] == pytest.approx(res["acc"])
    for avg in ("micro", "macro"):
        kw = {} if multilabel else {"labels": labels}
        p, r, f, _ = precision_recall_fscore_support(true, pred, average=avg, zero_division=0, **kw)
        assert res[f"{avg}_precision"] == pytest.approx(p)
        assert res[f"{avg}_recall"] == pytest.approx(r)
        assert res[f"{avg}_f1"] == pytest.approx(f)
