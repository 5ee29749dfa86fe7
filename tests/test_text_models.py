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


def test_textcnn_embeddings_are_uniform_as_in_kims_code_and_convs_are_glorot():
    m = build_model("textcnn", (40,), 5, seed=0, options={"embed_dim": 64, "maps": 20},
                    meta={"vocab_size": 3000})
    emb = m.embedding.weight.detach()[1:]  # row 0 is the zero padding row
    assert float(emb.min()) >= -0.25 and float(emb.max()) <= 0.25
    assert abs(float(emb.std()) - 0.5 / 12 ** 0.5) < 0.003 and abs(float(emb.mean())) < 0.005  # U(-a, a): a/sqrt(3)
    conv = m.convs[0].weight.detach()  # (maps, embed_dim, 3): Glorot std sqrt(2 / (fan_in + fan_out))
    fan_in, fan_out = 64 * 3, 20 * 3
    assert abs(float(conv.std()) - (2 / (fan_in + fan_out)) ** 0.5) < 0.01


def _token_data(seed=0):
    from nas_lth.data.base import Dataset, Split

    g = torch.Generator().manual_seed(seed)

    def split(n):
        y = torch.randint(0, 5, (n,), generator=g)
        x = torch.randint(2, 300, (n, 40), generator=g)
        x[:, :5] = (y * 50 + 7).unsqueeze(1)  # a learnable signal: the class's token up front
        return Split(x, y)

    return Dataset("tokens", split(240), split(60), split(60), 5, (40,), meta=META)


def test_textcnn_ticket_repeats_exactly_in_one_process():
    """Dropout draws come from the recipe's seed: two identical runs in one process give the same
    metrics and masks (they did not when dropout used the unseeded global generator)."""
    from nas_lth.estimation import recipe_from_dict, run_ticket

    data = _token_data()
    rc = recipe_from_dict({"model": "textcnn", "dataset": "digits", "rounds": 1, "budget": 2,
                           "model_options": {"embed_dim": 16, "maps": 6},
                           "prune_rate": {"embedding": 0.5, "conv": 0.5, "output": 0.2},
                           "training": {"batch_size": 20, "eval_every": 4}})
    a = run_ticket(rc, data)
    torch.rand(1000)  # disturb the global generator between the runs
    b = run_ticket(rc, data)
    for x, y in zip(a, b, strict=True):
        assert x.mask_digest == y.mask_digest
        assert x.metrics == y.metrics
