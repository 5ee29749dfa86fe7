"""Text classifiers: Kim's (2014) CNN over token ids and a bag-of-words MLP over TF-IDF features."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from nas_lth.errors import UserError
from nas_lth.models.init import glorot_normal_
from nas_lth.models.layers import MaskedConv1d, MaskedEmbedding, MaskedLinear
from nas_lth.models.lenet import FCNet
from nas_lth.models.registry import register


class TextCNN(nn.Module):
    """Kim 2014: embeddings -> 1-D convolutions of widths 3, 4, 5 (100 maps each) -> max over time ->
    dropout 0.5 -> output layer whose weight rows keep an l2 norm <= 3 (re-applied after each step)."""

    def __init__(self, input_shape, num_classes, vocab_size: int, embed_dim: int = 300,
                 windows=(3, 4, 5), maps: int = 100, dropout: float = 0.5, max_norm: float = 3.0):
        super().__init__()
        self.embedding = MaskedEmbedding(vocab_size, embed_dim, padding_idx=0, kind="embedding")
        self.convs = nn.ModuleList(MaskedConv1d(embed_dim, maps, k, kind="conv") for k in windows)
        self.dropout = nn.Dropout(dropout)
        self.fc = MaskedLinear(maps * len(windows), num_classes, kind="output")
        self.max_norm = max_norm
        self.seq_len = int(input_shape[0])
        # Glorot for the convolutions and the output layer; the embeddings are drawn from U(-0.25, 0.25),
        # as Kim's code initialises random word vectors (CNN-rand, and the words word2vec lacks).
        # Glorot's std for a 20,000 x 64 matrix would be ~0.01; nn.Embedding's N(0, 1) measured worse
        # on R8 (reports/reuters/, Question II).
        glorot_normal_(self.convs)
        glorot_normal_(self.fc)
        with torch.no_grad():
            self.embedding.weight.uniform_(-0.25, 0.25)
        with torch.no_grad():
            self.embedding.weight[0].zero_()  # the padding row

    def _head(self, emb: torch.Tensor) -> torch.Tensor:
        """emb: (N, D, L) -> logits."""
        pooled = [F.relu(conv(emb)).amax(dim=2) for conv in self.convs]
        return self.fc(self.dropout(torch.cat(pooled, dim=1)))

    def forward(self, x):
        return self._head(self.embedding(x).transpose(1, 2))

    @torch.no_grad()
    def post_step(self) -> None:
        """Kim's max-norm constraint; a rescaling, so pruned (zero) weights stay zero."""
        w = self.fc.weight
        w.mul_((self.max_norm / w.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0))

    def synflow_forward(self, dtype: torch.dtype) -> torch.Tensor:
        """SynFlow's all-ones input for a model that reads token ids: an all-ones vector over the
        vocabulary through the (|.|-ed) embedding matrix, at every position."""
        emb = self.embedding.weight.to(dtype).sum(0)  # (D,)
        return self._head(emb.view(1, -1, 1).expand(1, -1, self.seq_len))


def load_word_vectors(model: TextCNN, path: str | Path, vocab: list[str]) -> int:
    """Initialise embedding rows from a word2vec/GloVe text file ("word v1 v2 ..."); returns how
    many vocabulary words were found."""
    p = Path(path)
    dim = model.embedding.embedding_dim
    index = {w: i for i, w in enumerate(vocab)}
    found = 0
    try:
        with p.open(encoding="utf-8", errors="replace") as f:
            for line_no, line in enumerate(f, 1):
                parts = line.rstrip().split(" ")
                if len(parts) == 2 and line_no == 1:  # word2vec header: "<count> <dim>"
                    continue
                if len(parts) != dim + 1:
                    raise UserError(f"{p}: line {line_no} has {len(parts) - 1} values, the model's embed_dim is "
                                    f"{dim}")
                i = index.get(parts[0])
                if i is not None and i > 1:  # ids 0/1: padding and unknown keep their init
                    model.embedding.weight.data[i] = torch.tensor([float(v) for v in parts[1:]])
                    found += 1
    except OSError as exc:
        raise UserError(f"{p}: cannot read word vectors ({exc.strerror or exc})") from None
    return found


@register("textcnn", "Kim 2014 text CNN: embeddings, conv 3/4/5 x 100 maps, max-pool, dropout, max-norm")
def textcnn(input_shape, num_classes, vocab_size: int, embed_dim: int = 300, windows=(3, 4, 5), maps: int = 100,
            dropout: float = 0.5, max_norm: float = 3.0, word_vectors: str | None = None, vocab=None):
    """Kim's CNN over token ids (the ``tokens`` representation of a text dataset).

    Options:
        vocab_size: rows of the embedding matrix (from the dataset's vocabulary unless given)
        embed_dim: length of a word vector
        windows: widths of the 1-D convolutions, in tokens (a list)
        maps: feature maps of each convolution
        dropout: dropout probability before the output layer
        max_norm: largest l2 norm of an output-layer weight row (re-applied after each step)
        word_vectors: path of a word2vec/GloVe text file to start the embeddings from (null: random)
        vocab: the token of each id (from the dataset, for word_vectors)
    """
    model = TextCNN(input_shape, num_classes, vocab_size, embed_dim, tuple(windows), maps, dropout, max_norm)
    if word_vectors:
        if not vocab:
            raise UserError("model_options.word_vectors needs a dataset with a vocabulary (token ids)")
        load_word_vectors(model, word_vectors, list(vocab))
    return model


@register("bow_mlp", "bag-of-words MLP: vocabulary -> 300 -> 100 -> classes (the LeNet-300-100 of text)")
def bow_mlp(input_shape, num_classes, hidden=(300, 100)):
    """LeNet-300-100's fully-connected net over a vector of word features (the ``tfidf`` representation).

    Options:
        hidden: widths of the hidden layers, input side first (a list)
    """
    if len(input_shape) != 1:
        raise UserError(f"bow_mlp reads a vector of word features; this dataset's inputs have shape {input_shape}"
                        " (use the tfidf representation)")
    return FCNet(input_shape, num_classes, tuple(hidden))


