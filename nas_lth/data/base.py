"""The in-memory dataset every part of nas_lth trains on.

Whole splits live as tensors on the training device; a mini-batch is an index slice, which on small
models is several times faster than a per-sample DataLoader (see benchmarks/train_speed.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch: depends only on (seed, epoch), so runs resumed or rewound to any
    iteration see the same batches."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63))
    return torch.randperm(n, generator=g)


@dataclass
class Split:
    x: torch.Tensor  # float32 features (N, *input_shape) or int64 token ids (N, L)
    y: torch.Tensor  # int64 class ids (N,) or float32 multi-hot (N, C) for multi-label data

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, ...]
    multilabel: bool = False
    # e.g. {"vocab_size": 20000} for text; free-form facts models may need
    meta: dict = field(default_factory=dict)

    def to(self, device: torch.device | str) -> Dataset:
        return Dataset(
            self.name,
            self.train.to(device),
            self.val.to(device),
            self.test.to(device),
            self.num_classes,
            self.input_shape,
            self.multilabel,
            dict(self.meta),
        )

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}
