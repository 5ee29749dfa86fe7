"""The input transform a ticket was trained with, kept in its file, so a loaded ticket takes *raw* inputs.

The trainer never sees a dataset's raw arrays: ``nas_lth.data.load_dataset`` turns uint8 images into float32
in [0, 1] and standardises every channel (every feature of flat inputs) with the training split's mean and
std. A ticket that forgot this predicts near chance on raw digits (28 % against 68 % in issue 29). The ticket
file therefore records, under ``"input"``:

* ``{"kind": "standardize", "mean": [...], "std": [...]}``: per channel (``input_shape[0]`` values); a uint8
  input is first scaled by 1/255, any other dtype is cast to float32 - the same float32 operations, in the
  same order, as the data pipeline, so raw inputs give bit-identical logits;
* ``{"kind": "tokens", "vocab": <lzma'd id -> token list>, "max_len": L}``: the input is token ids, as the
  dataset returns them; :meth:`RawInput.encode` turns texts into those ids (lowercase ``\\w+`` tokens, unknown
  -> 1, padded with 0), so a text classifier can be fed new documents;
* ``{"kind": "identity"}``: the network takes the dataset's inputs as they are (TF-IDF rows).

:class:`RawInput` wraps the network with it; ``nas_lth.export.load`` returns one unless ``raw=False``.
"""

from __future__ import annotations

import lzma
import math
import warnings

import torch
from torch import nn

from nas_lth.errors import UserError

KINDS = ("standardize", "tokens", "identity")


def input_record(meta: dict, input_shape, standardized: bool) -> dict:
    """The ``"input"`` record of a ticket trained on a dataset with this ``meta`` (``Dataset.meta``)."""
    if standardized and "mean" in meta:
        return {"kind": "standardize", "mean": [float(v) for v in meta["mean"]],
                "std": [float(v) for v in meta["std"]]}
    if meta.get("representation") == "tokens" and "vocab" in meta:
        words = "\n".join(str(t) for t in meta["vocab"]).encode()  # \w+ tokens hold no newline
        return {"kind": "tokens", "vocab": torch.frombuffer(bytearray(lzma.compress(words)), dtype=torch.uint8),
                "vocab_size": len(meta["vocab"]), "max_len": int(input_shape[0])}
    return {"kind": "identity"}


def checked(record, input_shape, source: str) -> dict:
    """The record, checked against the model's input shape: a mismatch is a one-line :class:`UserError`."""
    shape = [int(s) for s in input_shape]
    if not isinstance(record, dict) or record.get("kind") not in KINDS:
        kind = record.get("kind") if isinstance(record, dict) else type(record).__name__
        raise UserError(f"{source}: input transform kind {kind!r}; allowed: {', '.join(KINDS)}")
    if record["kind"] == "standardize":
        mean, std = record.get("mean"), record.get("std")
        ok = isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == shape[0]
        if not ok or not all(isinstance(v, int | float) and math.isfinite(v) for v in [*mean, *std]) \
                or min(std) <= 0:
            n = len(mean) if isinstance(mean, list) else "?"
            raise UserError(f"{source}: the recorded input standardisation has {n} channel(s) (finite, std > 0 "
                            f"wanted) where the model's input shape {shape} has {shape[0]}")
    if record["kind"] == "tokens" and (len(shape) != 1 or record.get("max_len") != shape[0]):
        raise UserError(f"{source}: the recorded text inputs hold {record.get('max_len')} token ids where the "
                        f"model's input shape is {shape}")
    return record


class RawInput(nn.Module):
    """A ticket's network behind the transform it was trained with: call it on raw inputs, as the dataset
    function returned them (uint8 or float images, flat features, token ids). ``.net`` is the bare network,
    which takes standardised inputs."""

    def __init__(self, net: nn.Module, record: dict, input_shape):
        super().__init__()
        self.net = net
        self.kind = record["kind"]
        self.vocab: list[str] | None = None
        if self.kind == "standardize":
            stat = (len(record["mean"]),) + (1,) * (len(input_shape) - 1)  # broadcasts over (N, C, ...)
            self.register_buffer("mean", torch.tensor(record["mean"], dtype=torch.float32).view(stat))
            self.register_buffer("std", torch.tensor(record["std"], dtype=torch.float32).view(stat))
        if self.kind == "tokens":
            self.vocab = lzma.decompress(record["vocab"].numpy().tobytes()).decode().split("\n")
            self.max_len = int(record["max_len"])

    def prepare(self, x) -> torch.Tensor:
        """Raw inputs -> what the network was trained on (a tensor on the network's device)."""
        x = torch.as_tensor(x)
        if self.kind != "standardize":
            return x
        # the data pipeline's float32 steps, in its order: x * (1/255) for uint8, then (x - mean) / std
        x = x * torch.tensor(1 / 255, dtype=torch.float32) if x.dtype == torch.uint8 else x.to(torch.float32)
        return (x.to(self.mean.device) - self.mean) / self.std

    def forward(self, x):
        return self.net(self.prepare(x))

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Token ids of ``texts`` (a text ticket only), as the dataset made them from its documents."""
        if self.vocab is None:
            raise UserError(f"encode(): this ticket's inputs are {self.kind!r}, not token ids")
        from nas_lth.data.text import encode, tokenize

        return torch.from_numpy(encode([tokenize(t) for t in texts], self.vocab, self.max_len))


def wrap(net: nn.Module, ticket: dict, source: str) -> nn.Module:
    """``net`` behind the ticket's recorded transform; a ticket written before transforms were recorded
    gives the bare network, with a warning that it takes standardised inputs."""
    record = ticket.get("input")
    if record is None:
        warnings.warn(f"{source}: this ticket file does not record the input transform it was trained with "
                      "(written before tickets recorded it): the module takes standardised inputs, not raw ones",
                      UserWarning, stacklevel=3)
        return net
    return RawInput(net, checked(record, ticket["model"]["input_shape"], source), ticket["model"]["input_shape"])
