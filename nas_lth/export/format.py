"""The ticket file: a trained lottery ticket in a compact, self-describing form.

A plain ``torch.save`` dictionary, so ``torch.load(path, weights_only=True)`` reads it without
running any pickled code (a ticket may come from someone else's cluster). Per prunable layer it
holds the mask as packed bits (``numpy.packbits``, then LZMA: a mask at a few percent density is
mostly runs of zeros, so the bits shrink about 3-4x more) and only the surviving weights, in the
mask's row-major order, as float32 - the exact trained values, so a loaded ticket predicts exactly
as the trial did. The values are byte-shuffled (all first bytes, then all second bytes, ... - the
HDF5/Blosc "shuffle" filter) before LZMA: sign and exponent bytes of trained weights repeat a lot,
which saves ~14 % losslessly. Everything else in the state dict (biases, BatchNorm statistics) is
kept dense.

One file may carry several weight sets for the same mask ("end": after the full training budget,
what the search measured and ranked; "early_stop": at the minimum validation loss, the LTH paper's
convention); an exported file usually keeps one.
"""

from __future__ import annotations

import inspect
import io
import lzma
import math
import time
import zipfile
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from nas_lth import plugins
from nas_lth.errors import UserError
from nas_lth.models import MODELS, build_model, masked_layers, set_masks
from nas_lth.models.layout import set_memory_format
from nas_lth.pruning import density, digest

FORMAT = "nas_lth.ticket"
VERSION = 1
WEIGHT_SETS = ("end", "early_stop")
MAX_LAYER_WEIGHTS = 2**31  # per layer: larger than any model here by far (VGG-19's largest has 2.4M)
State = dict[str, torch.Tensor]


@dataclass
class ModelSpec:
    """What rebuilds the architecture: registry name, input shape, classes, options."""

    name: str
    input_shape: list[int]
    num_classes: int
    options: dict = field(default_factory=dict)

    def build(self) -> nn.Module:
        return build_model(self.name, tuple(self.input_shape), self.num_classes, options=self.options)


def model_spec(name: str, input_shape, num_classes: int, options: dict | None, meta: dict | None) -> ModelSpec:
    # word vectors only initialise the embedding, which the ticket's weights replace
    opts = {k: v for k, v in (options or {}).items() if k not in ("word_vectors", "vocab")}
    if meta and "vocab_size" in meta and name in MODELS \
            and "vocab_size" in inspect.signature(MODELS[name].builder).parameters:
        opts.setdefault("vocab_size", int(meta["vocab_size"]))  # build_model takes it from the dataset
    return ModelSpec(name, [int(s) for s in input_shape], int(num_classes), _plain(opts))


def encode_mask(mask: torch.Tensor) -> torch.Tensor:
    bits = np.packbits(mask.detach().flatten().cpu().numpy().astype(bool)).tobytes()
    return torch.frombuffer(bytearray(lzma.compress(bits)), dtype=torch.uint8)


def inflate(blob: torch.Tensor, size: int) -> bytes:
    """The LZMA ``blob``, which must inflate to exactly ``size`` bytes. Never more than ``size + 1``
    bytes are inflated: a small blob of a damaged or hostile file may stand for gigabytes."""
    dec = lzma.LZMADecompressor()
    raw = dec.decompress(blob.numpy().tobytes(), max_length=size + 1)
    if len(raw) > size or not dec.eof:
        raise ValueError(f"the data inflates to more than the {size} bytes its header promises")
    if len(raw) < size:
        raise ValueError(f"{len(raw)} bytes where the header promises {size}")
    return raw


def _weights_in(shape) -> int:
    if not (isinstance(shape, list) and shape and all(isinstance(d, int) and d > 0 for d in shape)):
        raise ValueError(f"shape {str(shape)[:80]} is not a list of positive sizes")
    n = math.prod(shape)
    if n > MAX_LAYER_WEIGHTS:
        raise ValueError(f"shape {shape} has {n} weights, more than any layer this format holds ({MAX_LAYER_WEIGHTS})")
    return n


def decode_mask(blob: torch.Tensor, shape: list[int]) -> torch.Tensor:
    n = _weights_in(shape)
    bits = np.unpackbits(np.frombuffer(inflate(blob, (n + 7) // 8), dtype=np.uint8), count=n)
    return torch.from_numpy(bits.astype(np.float32)).view(*shape)


def encode_values(values: torch.Tensor) -> torch.Tensor:
    arr = values.detach().cpu().float().contiguous().numpy()
    shuffled = arr.view(np.uint8).reshape(-1, 4).T.tobytes()
    return torch.frombuffer(bytearray(lzma.compress(shuffled)), dtype=torch.uint8)


def decode_values(blob: torch.Tensor, count: int) -> torch.Tensor:
    raw = np.frombuffer(inflate(blob, 4 * count), dtype=np.uint8)
    return torch.from_numpy(raw.reshape(4, count).T.copy().view(np.float32).reshape(-1))


def pack(model_spec_: ModelSpec, masks: State, weight_sets: dict[str, State], provenance: dict,
         recipe: dict | None = None, input_record: dict | None = None) -> dict:
    """The ticket dictionary for ``masks`` and one or more trained state dicts (same masks); ``input_record``:
    the input transform it was trained with (:func:`nas_lth.export.transform.input_record`)."""
    if not weight_sets or set(weight_sets) - set(WEIGHT_SETS):
        raise ValueError(f"weight sets must be among {WEIGHT_SETS}, got {sorted(weight_sets)}")
    masks = {n: m.detach().cpu() for n, m in masks.items()}
    layers = {n: {"shape": list(m.shape), "mask": encode_mask(m)} for n, m in masks.items()}
    prunable = {f"{n}.weight" for n in masks} | {f"{n}.mask" for n in masks}
    keep = {n: m.bool() for n, m in masks.items()}
    sets = {}
    for which, state in weight_sets.items():
        values = {n: encode_values(state[f"{n}.weight"].detach().cpu().float()[keep[n]]) for n in masks}
        others = {k: v.detach().cpu().clone() for k, v in state.items() if k not in prunable}
        sets[which] = {"values": values, "params": others}
    return {
        "format": FORMAT, "version": VERSION,
        "model": {"name": model_spec_.name, "input_shape": model_spec_.input_shape,
                  "num_classes": model_spec_.num_classes, "options": model_spec_.options,
                  "memory_format": layout_of(next(iter(weight_sets.values())))},
        "layers": layers, "weights": sets, "codec": {"mask": "packbits+lzma", "values": "float32+shuffle+lzma"},
        "provenance": _plain({**provenance, "mask_digest": digest(masks), "weights_remaining": density(masks),
                              "created_at": provenance.get("created_at", time.time()),
                              "torch_version": torch.__version__}),
        "recipe": _plain(recipe or {}),
        **({"input": input_record} if input_record is not None else {}),
    }


def layout_of(state: State) -> str:
    """``channels_last`` when the state's 4-d weights are laid out NHWC (how the trainer runs conv models)."""
    four = [v for v in state.values() if v.dim() == 4 and not v.is_contiguous()]
    return "channels_last" if four and all(v.is_contiguous(memory_format=torch.channels_last) for v in four) \
        else "contiguous"


def to_bytes(ticket: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(ticket, buf)
    return buf.getvalue()


def from_bytes(data: bytes, source: str) -> dict:
    """Parse and check a ticket file's bytes; any damage is a one-line :class:`UserError`."""
    try:
        ticket = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle and unpickler-policy errors all mean "not a valid ticket"
        if is_program(data):
            raise UserError(f"{source}: this is a compact program (torch.export), not a ticket file: load it with "
                            f"torch.export.load({source!r}).module()") from None
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        why = next((ln.strip() for ln in lines if "WeightsUnpickler error" in ln), lines[0] if lines else "")
        raise UserError(f"{source}: not a readable nas_lth ticket file ({type(exc).__name__}: "
                        f"{why or 'truncated?'})") from None
    if not isinstance(ticket, dict) or ticket.get("format") != FORMAT:
        raise UserError(f"{source}: not a nas_lth ticket file (no format tag {FORMAT!r})")
    if ticket.get("version") != VERSION:
        raise UserError(f"{source}: ticket format version {ticket.get('version')!r}; this nas_lth reads "
                        f"version {VERSION}")
    checked_masks(ticket, source)  # whatever reads a ticket file gets one whose masks are its own
    return ticket


def is_program(data: bytes) -> bool:
    """Whether ``data`` is a ``torch.export`` archive (what ``export --compact`` writes): a zip holding an
    ``archive_format`` record (PT2 archives) or a serialized exported program (older torch versions)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = {n.rsplit("/", 1)[-1] for n in z.namelist()}
    except (zipfile.BadZipFile, ValueError, OSError):
        return False
    return "archive_format" in names or "serialized_exported_program.json" in names


def masks_of(ticket: dict, source: str = "ticket") -> State:
    try:
        return {n: decode_mask(layer["mask"], layer["shape"]) for n, layer in ticket["layers"].items()}
    except (ValueError, TypeError, KeyError, AttributeError, lzma.LZMAError) as exc:
        raise UserError(f"{source}: ticket masks are damaged ({exc})") from None


def checked_masks(ticket: dict, source: str) -> State:
    """The decoded masks, which must match the digest recorded when the ticket was written."""
    masks = masks_of(ticket, source)
    want = (ticket.get("provenance") or {}).get("mask_digest")
    if not want or digest(masks) != want:
        raise UserError(f"{source}: mask digest {digest(masks)} != recorded {want} (file damaged?)")
    return masks


def state_of(ticket: dict, masks: State, which: str) -> State:
    """The full state dict (prunable weights scattered back into their masks) of one weight set."""
    if which not in ticket["weights"]:
        raise UserError(f"ticket has no {which!r} weights; it holds: {', '.join(sorted(ticket['weights']))}")
    ws = ticket["weights"][which]
    state = dict(ws["params"])
    for n, m in masks.items():
        keep = m.bool()
        try:
            vals = decode_values(ws["values"][n], int(keep.sum()))
        except (ValueError, lzma.LZMAError) as exc:
            raise UserError(f"ticket layer {n}: damaged weight values ({exc})") from None
        w = torch.zeros(m.shape, dtype=vals.dtype)
        w[keep] = vals
        state[f"{n}.weight"] = w
        state[f"{n}.mask"] = m
    return state


def rebuild(ticket: dict, which: str, source: str) -> nn.Module:
    """A working module (eval mode, CPU) with the ticket's weights; the mask digest is checked."""
    masks = checked_masks(ticket, source)
    plugins.load((ticket.get("provenance") or {}).get("plugins") or [], where=f"{source}: plugins")
    m = ticket["model"]
    model = ModelSpec(m["name"], m["input_shape"], m["num_classes"], m.get("options") or {}).build()
    names = {n for n, _ in masked_layers(model)}
    if names != set(masks):
        raise UserError(f"{source}: layers {sorted(masks)} do not match model {m['name']!r} ({sorted(names)})")
    model.load_state_dict(state_of(ticket, masks, which))
    set_masks(model, masks)
    # the layout its weights were in (tickets before it was recorded were all NCHW), so it predicts exactly as
    # in the trial
    set_memory_format(model, m.get("memory_format", "contiguous"))
    return model.eval()


def select(ticket: dict, which: str) -> dict:
    """A copy that keeps only one weight set (what ``export`` writes by default)."""
    if which not in ticket["weights"]:
        raise UserError(f"ticket has no {which!r} weights; it holds: {', '.join(sorted(ticket['weights']))}")
    return {**ticket, "weights": {which: ticket["weights"][which]}}


def _plain(obj):
    """JSON-like values only (what the weights-only unpickler accepts): tuples become lists, numpy
    scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, str):
        return str(obj)  # str subclasses (torch.__version__ is one) are not plain for the unpickler
    if obj is None or isinstance(obj, bool | int | float):
        return obj
    return str(obj)
