"""Caption encoder, text-conditioned latent diffusion and the attribute classifier."""

from __future__ import annotations

import pytest
import torch

from ddmi_lite.data.furniture import generate_shape
from ddmi_lite.domains.shape_attributes import (HEADS, AttributeClassifier, attribute_accuracy, attribute_labels,
                                                classifier_loss, gt_occupancy_grids, label_matrix, predict_attributes)
from ddmi_lite.domains.text_to_shape import build_text_ldm, text_to_shape_config
from ddmi_lite.errors import DDMIError
from ddmi_lite.ldm import LatentPosterior
from ddmi_lite.text import PAD, UNK, TextEncoder, Vocabulary, tokenize

CAPTIONS = ["a tall armless chair with a slatted back and four legs",
            "an L-shaped two-seater sofa with armrests and short legs",
            "a round table with three legs"]


def test_tokenize_keeps_hyphenated_words():
    assert tokenize("An L-shaped, TWO-seater sofa!") == ["an", "l-shaped", "two-seater", "sofa"]
    with pytest.raises(DDMIError):
        tokenize(3)


def test_vocabulary_order_padding_and_unknown_words():
    vocab = Vocabulary.from_captions(CAPTIONS)
    assert vocab.words[:2] == [PAD, UNK] and vocab.pad_id == 0 and vocab.unk_id == 1
    assert vocab.words[2:5] == ["a", "legs", "with"]  # most frequent first, ties alphabetical
    ids = vocab.encode(["a chair", "a purple glass chair"])
    assert ids.shape == (2, 4)
    assert ids[0, 2:].tolist() == [0, 0]  # padding
    assert ids[1, 1].item() == vocab.unk_id and ids[1, 2].item() == vocab.unk_id  # unseen words → <unk>
    assert vocab.decode(ids) == ["a chair", "a <unk> <unk> chair"]
    assert vocab.encode([""]).shape == (1, 1)


def test_text_encoder_shapes_and_padding_invariance():
    torch.manual_seed(0)
    vocab = Vocabulary.from_captions(CAPTIONS)
    enc = TextEncoder(vocab, dim=16, out_dim=8, layers=1, heads=2).eval()
    out = enc.embed(CAPTIONS + ["", "zebra"])
    assert out.shape == (5, 8) and torch.isfinite(out).all()
    alone = enc.embed([CAPTIONS[2]])
    assert torch.allclose(alone[0], out[2], atol=1e-5)  # extra padding in a batch changes nothing
    assert not torch.allclose(out[0], out[1])
    with pytest.raises(DDMIError):
        enc(torch.zeros(2, 3))


def test_external_encoder_hook_and_cache():
    calls = []

    def embed_fn(captions):
        calls.append(list(captions))
        return torch.stack([torch.full((4,), float(len(c))) for c in captions])

    enc = TextEncoder.from_external(embed_fn, 4)
    out = enc.embed(["ab", "abc", "ab"])
    assert out.shape == (3, 4) and out[0, 0] == 2 and out[1, 0] == 3
    enc.embed(["abc"])
    assert sum(len(c) for c in calls) == 2  # each distinct caption embedded once
    with pytest.raises(DDMIError):
        TextEncoder.from_external(lambda c: torch.zeros(len(c), 3), 4).embed(["x"])
    assert TextEncoder.from_external(lambda c: [[0.0] * 5 for _ in c]).out_dim == 5  # width probed


def test_external_encoder_conditions_the_ldm():
    cfg = text_to_shape_config("smoke")
    text = TextEncoder.from_external(lambda c: torch.stack([torch.full((6,), float(len(s))) for s in c]))
    model = build_text_ldm(cfg, (12, 4, 4), Vocabulary([]), text=text)
    assert model.ldm.net.cond_dim == 6 and not list(model.text.parameters())
    loss, _ = model.loss(torch.randn(2, 12, 4, 4), ["a", "bb"])
    assert torch.isfinite(loss)


def _tiny_model():
    cfg = text_to_shape_config("smoke")
    vocab = Vocabulary.from_captions(CAPTIONS)
    return build_text_ldm(cfg, (12, 4, 4), vocab, latent_scale=1.0), cfg


def test_guidance_zero_equals_the_conditional_model():
    torch.manual_seed(1)
    model, _ = _tiny_model()
    with torch.no_grad():  # zero-initialised branches would hide the condition
        for p in model.ldm.net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.ldm.mix_logit.data.fill_(0.0)
    x, t = torch.randn(3, 12, 4, 4), torch.tensor([10, 500, 900])
    cond = model.text.embed(CAPTIONS)
    eps_c = model.ldm.eps(x, t, cond, guidance=0.0)
    assert torch.allclose(eps_c, model.ldm._eps(x, t, cond), atol=1e-6)
    eps_u = model.ldm.eps(x, t, None)
    w = 2.0
    guided = model.ldm.eps(x, t, cond, guidance=w)
    assert torch.allclose(guided, (1 + w) * eps_c - w * eps_u, atol=1e-5)
    assert not torch.allclose(eps_c, eps_u)


def test_text_ldm_loss_and_sampling_shapes():
    torch.manual_seed(2)
    model, _ = _tiny_model()
    loss, _ = model.loss(torch.randn(3, 12, 4, 4), CAPTIONS, p_uncond=0.5)
    loss.backward()
    assert torch.isfinite(loss) and model.text.tokens.weight.grad is not None
    z = model.sample(CAPTIONS[:2], guidance=1.0, steps=3, generator=torch.Generator().manual_seed(0))
    assert z.shape == (2, 12, 4, 4)
    assert model.sample(n=2, steps=3).shape == (2, 12, 4, 4)
    with pytest.raises(DDMIError):
        model.loss(torch.randn(2, 12, 4, 4), CAPTIONS)
    post = LatentPosterior(torch.zeros(3, 12, 4, 4), torch.ones(3, 12, 4, 4))
    assert post.shape == (12, 4, 4)


def test_attribute_labels_and_accuracy():
    attrs = generate_shape("chair", 0).attributes
    labels = attribute_labels(attrs)
    heads = list(HEADS)
    assert labels[heads.index("category")] == HEADS["category"].index("chair")
    assert labels[heads.index("lamp_type")] == -1 and labels[heads.index("sofa_shape")] == -1
    assert labels[heads.index("legs")] == HEADS["legs"].index(str(attrs["n_legs"]))
    target = label_matrix([attrs, generate_shape("lamp", 0).attributes])
    acc = attribute_accuracy(target.clamp_min(0), target)
    assert acc["all"] == 1.0 and acc["category"] == 1.0
    wrong = target.clamp_min(0).clone()
    wrong[:, 0] = (wrong[:, 0] + 1) % len(HEADS["category"])
    valid = int((target >= 0).sum())
    assert attribute_accuracy(wrong, target)["all"] == pytest.approx((valid - 2) / valid)


def test_classifier_shapes_and_gt_grids():
    ids = ["chair_00000", "sofa_00001"]
    grids = gt_occupancy_grids(ids, 16)
    assert grids.shape == (2, 16, 16, 16) and grids.dtype == torch.bool and grids.any()
    model = AttributeClassifier(resolution=16, width=8)
    logits = model(grids.float())
    assert logits.shape == (2, sum(len(c) for c in HEADS.values()))
    labels = label_matrix([generate_shape("chair", 0).attributes, generate_shape("sofa", 1).attributes])
    classifier_loss(logits, labels).backward()
    assert predict_attributes(model, grids).shape == (2, len(HEADS))
    with pytest.raises(DDMIError):
        gt_occupancy_grids(["not_an_id"], 8)
