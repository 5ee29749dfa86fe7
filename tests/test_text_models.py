"""Text models: TextCNN (Kim 2014) and the bag-of-words MLP, pruned like any other model."""

import pytest
import torch

from nas_lth.errors import UserError
from nas_lth.models import build_model, get_masks, layer_kinds, masked_layers, set_masks
from nas_lth.pruning import context

META = {"vocab_size": 300, "vocab": ["<pad>", "<unk>"] + [f"w{i}" for i in range(298)]}


def textcnn(**opts):
    return build_model("textcnn", (40,), 5, seed=0, options={"embed_dim": 16, "maps": 6, **opts}, meta=META)


def test_textcnn_shapes_kinds_and_vocab_from_meta():
    m = textcnn()
    assert m(torch.randint(0, 300, (3, 40))).shape == (3, 5)
    kinds = layer_kinds(m)
    assert kinds["embedding"] == "embedding" and kinds["fc"] == "output"
    assert sorted(v for k, v in kinds.items() if k.startswith("convs")) == ["conv"] * 3
    assert m.embedding.weight.shape == (300, 16)
    assert torch.equal(m.embedding.weight[0], torch.zeros(16))  # padding row


def test_max_norm_constraint_caps_rows_and_keeps_pruned_weights_zero():
    m = textcnn()
    with torch.no_grad():
        m.fc.weight.mul_(100)
    mask = (torch.rand_like(m.fc.weight) > 0.5).float()
    m.fc.set_mask(mask)
    m.post_step()
    norms = m.fc.weight.norm(dim=1)
    assert (norms <= 3.0 + 1e-5).all() and (norms > 2.9).any()
    assert (m.fc.weight[mask == 0] == 0).all()


def test_synflow_reaches_every_prunable_layer_of_a_token_model():
    m = textcnn()
    masks = get_masks(m)
    masks["embedding"][5:10] = 0
    set_masks(m, masks)
    grads = context.synflow_grads(m, (40,))
    for name, layer in masked_layers(m):
        score = (grads[name]["synflow_grad"] * layer.weight).abs()
        assert score.sum() > 0, name
        assert (score[layer.mask == 0] == 0).all(), name


def test_word_vectors_initialise_known_words(tmp_path):
    vec = tmp_path / "vecs.txt"
    vec.write_text("2 16\nw0 " + " ".join(["0.5"] * 16) + "\nnotinvocab " + " ".join(["9"] * 16) + "\n")
    m = textcnn(word_vectors=str(vec))
    assert torch.allclose(m.embedding.weight[2], torch.full((16,), 0.5))
    bad = tmp_path / "bad.txt"
    bad.write_text("w0 1 2 3\n")
    with pytest.raises(UserError, match="embed_dim"):
        textcnn(word_vectors=str(bad))


def test_bow_mlp_is_lenet_shaped_and_rejects_token_inputs():
    m = build_model("bow_mlp", (1000,), 8, seed=0)
    assert [tuple(layer.weight.shape) for _, layer in masked_layers(m)] == [(300, 1000), (100, 300), (8, 100)]
    with pytest.raises(UserError, match="tfidf"):
        build_model("bow_mlp", (1, 28, 28), 10)
