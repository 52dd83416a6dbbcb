"""CF backbones: architecture faithful to the reference, CF interface, save/load, loading errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from allmrec.cf import (
    GRU4RecConfig,
    GRU4RecModel,
    NCFConfig,
    NCFModel,
    NextItNetConfig,
    NextItNetModel,
    SASRecConfig,
    SASRecModel,
    load_cf_model,
)
from allmrec.errors import AllmrecError, CheckpointError

NUM_ITEMS = 30
NUM_USERS = 12

# (name, model class, config) — tiny sizes so every case runs in milliseconds.
CASES = [
    ("sasrec", SASRecModel, lambda **kw: SASRecConfig(num_items=NUM_ITEMS, hidden_size=8, maxlen=10, num_heads=2, **kw)),
    ("gru4rec", GRU4RecModel, lambda **kw: GRU4RecConfig(num_items=NUM_ITEMS, hidden_size=8, gru_hidden_size=12, maxlen=10, **kw)),
    ("nextitnet", NextItNetModel, lambda **kw: NextItNetConfig(num_items=NUM_ITEMS, hidden_size=8, dilations=[1, 2], maxlen=10, **kw)),
    ("ncf", NCFModel, lambda **kw: NCFConfig(num_users=NUM_USERS, num_items=NUM_ITEMS, hidden_size=8, mlp_hidden_sizes=[8, 4], **kw)),
]
SEQUENTIAL = [c for c in CASES if c[0] != "ncf"]


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(1, NUM_ITEMS + 1, (4, 10), generator=g)
    seq[0, :6] = 0  # a short, left-padded history
    items = torch.randint(1, NUM_ITEMS + 1, (4, 5), generator=g)
    users = torch.tensor([1, 2, 3, NUM_USERS])
    return seq, items, users


@pytest.mark.parametrize("name,model_cls,make_config", CASES, ids=[c[0] for c in CASES])
def test_interface_shapes_and_model_type(name, model_cls, make_config):
    torch.manual_seed(0)
    model = model_cls(make_config()).eval()
    seq, items, users = _inputs()
    assert model.config.model_type == name
    assert model.hidden_size == 8
    u = model.user_representation(seq, users)
    e = model.item_embeddings(items)
    assert u.shape == (4, 8) and e.shape == (4, 5, 8)
    assert model.score(seq, items, users).shape == (4, 5)
    all_scores = model.score_all_items(seq, users)
    assert all_scores.shape == (4, NUM_ITEMS + 1)
    # score_all_items and score agree on the candidate columns
    torch.testing.assert_close(all_scores.gather(1, items), model.score(seq, items, users))
    # the padding row is the zero vector
    assert torch.count_nonzero(model.item_embeddings(torch.tensor([0]))) == 0


@pytest.mark.parametrize("name,model_cls,make_config", SEQUENTIAL, ids=[c[0] for c in SEQUENTIAL])
def test_sequential_models_are_causal_and_pad_consistently(name, model_cls, make_config):
    torch.manual_seed(0)
    model = model_cls(make_config()).eval()
    seq, _, _ = _inputs()
    feats = model(seq).last_hidden_state
    changed = seq.clone()
    changed[:, -1] = (changed[:, -1] % NUM_ITEMS) + 1  # a different most recent item
    feats2 = model(changed).last_hidden_state
    torch.testing.assert_close(feats[:, :-1], feats2[:, :-1])  # earlier positions never see the future
    assert not torch.allclose(feats[:, -1], feats2[:, -1])
    # a short history gives the same representation whether or not the caller pads it to maxlen
    short = seq[0:1, 6:]
    torch.testing.assert_close(model.user_representation(short), model.user_representation(seq[0:1]))
    # ...and longer histories keep only the last maxlen items
    longer = torch.cat([torch.randint(1, NUM_ITEMS + 1, (4, 5)), seq], dim=1)
    torch.testing.assert_close(model.user_representation(longer), model.user_representation(seq))


def _reference_sasrec_log2feats(model: SASRecModel, log_seqs: torch.Tensor) -> torch.Tensor:
    """`SASRec.log2feats` of ghdtjr/A-LLMRec `pre_train/sasrec/model.py`, transcribed (seq-first
    MultiheadAttention, Conv1d feed-forward), running on `model`'s weights."""
    d = model.config.hidden_size
    seqs = model.item_emb(log_seqs)
    seqs = seqs * model.item_emb.embedding_dim ** 0.5
    positions = torch.arange(log_seqs.shape[1]).unsqueeze(0).expand(log_seqs.shape[0], -1)
    seqs = seqs + model.pos_emb(positions)
    timeline_mask = log_seqs == 0
    seqs = seqs * ~timeline_mask.unsqueeze(-1)
    tl = seqs.shape[1]
    attention_mask = ~torch.tril(torch.ones((tl, tl), dtype=torch.bool))
    for block in model.blocks:
        mha = nn.MultiheadAttention(d, model.config.num_heads, model.config.dropout_rate).eval()
        mha.load_state_dict(block.attention.state_dict())
        conv1, conv2 = nn.Conv1d(d, d, kernel_size=1), nn.Conv1d(d, d, kernel_size=1)
        with torch.no_grad():
            conv1.weight.copy_(block.feed_forward.conv1.weight.unsqueeze(-1))
            conv1.bias.copy_(block.feed_forward.conv1.bias)
            conv2.weight.copy_(block.feed_forward.conv2.weight.unsqueeze(-1))
            conv2.bias.copy_(block.feed_forward.conv2.bias)
        seqs = torch.transpose(seqs, 0, 1)
        Q = block.attention_layernorm(seqs)
        mha_outputs, _ = mha(Q, seqs, seqs, attn_mask=attention_mask)
        seqs = Q + mha_outputs
        seqs = torch.transpose(seqs, 0, 1)
        seqs = block.forward_layernorm(seqs)
        outputs = conv2(torch.relu(conv1(seqs.transpose(-1, -2)))).transpose(-1, -2)
        seqs = outputs + seqs
        seqs = seqs * ~timeline_mask.unsqueeze(-1)
    return model.last_layernorm(seqs)


def test_sasrec_matches_the_reference_forward():
    torch.manual_seed(0)
    model = SASRecModel(SASRecConfig(num_items=NUM_ITEMS, hidden_size=8, maxlen=10, num_heads=2)).eval()
    # move LayerNorm params off their (1, 0) init so a misplaced norm would show
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    seq, _, _ = _inputs()
    with torch.no_grad():
        ours = model(seq).last_hidden_state
        ref = _reference_sasrec_log2feats(model, seq)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    # user representation = last position after the final LayerNorm; item embedding = raw row (no √d)
    torch.testing.assert_close(model.user_representation(seq), ref[:, -1])
    ids = torch.tensor([[1, 5, 7]])
    torch.testing.assert_close(model.item_embeddings(ids), model.item_emb.weight[ids])


def test_sasrec_defaults_are_the_papers():
    cfg = SASRecConfig(num_items=10)
    assert (cfg.hidden_size, cfg.num_blocks, cfg.num_heads, cfg.dropout_rate, cfg.maxlen, cfg.layer_norm_eps) == (
        50, 2, 1, 0.5, 50, 1e-8)
    assert cfg.loss_type == "bce"
    model = SASRecModel(cfg)
    assert model.pos_emb.num_embeddings == 50 and model.item_emb.padding_idx == 0
    assert model.last_layernorm.eps == 1e-8


@pytest.mark.parametrize("bad", [dict(num_heads=3), dict(dropout_rate=1.0), dict(loss_type="bpr"), dict(maxlen=0)])
def test_bad_config_values_raise_allmrec_error(bad):
    with pytest.raises(AllmrecError):
        SASRecConfig(num_items=10, **{"hidden_size": 8, **bad})


def test_building_without_num_items_is_an_error():
    with pytest.raises(AllmrecError, match="num_items"):
        SASRecModel(SASRecConfig())


def test_ncf_needs_user_ids_and_maps_unseen_users_to_row_zero():
    torch.manual_seed(0)
    model = NCFModel(NCFConfig(num_users=NUM_USERS, num_items=NUM_ITEMS, hidden_size=8)).eval()
    seq, items, _ = _inputs()
    with pytest.raises(AllmrecError, match="user_ids"):
        model.user_representation(seq)
    # history is ignored: only the user id matters
    users = torch.tensor([1, 2, 3, 4])
    torch.testing.assert_close(model.score(seq, items, users), model.score(torch.zeros_like(seq), items, users))
    unseen = model.user_representation(None, torch.tensor([NUM_USERS + 1, NUM_USERS + 7]))
    torch.testing.assert_close(unseen, model.user_emb.weight[[0, 0]])


@pytest.mark.parametrize("loss_type", ["bce", "ce"])
@pytest.mark.parametrize("name,model_cls,make_config", CASES, ids=[c[0] for c in CASES])
def test_forward_loss_is_finite_and_differentiable(name, model_cls, make_config, loss_type):
    torch.manual_seed(0)
    model = model_cls(make_config(loss_type=loss_type))
    seq, items, users = _inputs()
    if name == "ncf":
        out = model(user_ids=users, positive_ids=items[:, 0], negative_ids=items[:, 1:])
    else:
        pos = torch.roll(seq, -1, dims=1)
        pos[seq == 0] = 0
        out = model(seq, positive_ids=pos, negative_ids=torch.randint(1, NUM_ITEMS + 1, seq.shape))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.item_emb.weight.grad is not None and model.item_emb.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name,model_cls,make_config", CASES, ids=[c[0] for c in CASES])
def test_save_then_load_gives_identical_scores(tmp_path, name, model_cls, make_config):
    torch.manual_seed(0)
    model = model_cls(make_config())
    # a few optimiser steps so the saved weights differ from any fresh init
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    seq, items, users = _inputs()
    for _ in range(3):
        model.score(seq, items, users).sum().backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()
    loaded = load_cf_model(tmp_path / "ckpt")
    assert type(loaded) is model_cls and not loaded.training
    assert all(not p.requires_grad for p in loaded.parameters())
    model.eval().requires_grad_(False)  # same (inference) kernels on both sides
    assert torch.equal(model.score(seq, items, users), loaded.score(seq, items, users))
    assert torch.equal(model.score_all_items(seq, users), loaded.score_all_items(seq, users))


def test_auto_classes_load_cf_checkpoints(tmp_path):
    from transformers import AutoConfig, AutoModel

    SASRecModel(SASRecConfig(num_items=NUM_ITEMS, hidden_size=8)).save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is SASRecConfig
    assert type(AutoModel.from_pretrained(tmp_path)) is SASRecModel


def _saved(tmp_path):
    path = tmp_path / "ckpt"
    SASRecModel(SASRecConfig(num_items=NUM_ITEMS, hidden_size=8)).save_pretrained(path)
    return path


def test_load_errors_missing_dir(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_cf_model(tmp_path / "nope")


def test_load_errors_no_config(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        load_cf_model(tmp_path)


def test_load_errors_corrupt_config(tmp_path):
    path = _saved(tmp_path)
    (path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_cf_model(path)


def test_load_errors_not_a_cf_model(tmp_path):
    path = _saved(tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["model_type"] = "allmrec"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="not a CF model"):
        load_cf_model(path)


def test_load_errors_missing_weights(tmp_path):
    path = _saved(tmp_path)
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        load_cf_model(path)


def test_load_errors_truncated_weights(tmp_path):
    path = _saved(tmp_path)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_cf_model(path)


def test_load_errors_weights_do_not_fit_config(tmp_path):
    path = _saved(tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["num_items"] = NUM_ITEMS + 5
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError):
        load_cf_model(path)


def test_evaluate_cli_knows_the_same_cf_types():
    from allmrec.cf import CF_MODEL_TYPES
    from allmrec.evaluation.cli import CF_TYPES

    assert tuple(CF_TYPES) == tuple(CF_MODEL_TYPES)
    assert np.all([t in ("sasrec", "gru4rec", "nextitnet", "ncf") for t in CF_MODEL_TYPES])


def test_ce_loss_is_softmax_over_real_items_only():
    from allmrec.cf.losses import full_softmax_ce_loss

    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])  # items 1, 2, 3
    targets = torch.tensor([1, 3])
    expected = -(torch.log_softmax(logits, -1)[0, 0] + torch.log_softmax(logits, -1)[1, 2]) / 2
    torch.testing.assert_close(full_softmax_ce_loss(logits, targets), expected)
    torch.manual_seed(0)
    model = SASRecModel(SASRecConfig(num_items=NUM_ITEMS, hidden_size=8, maxlen=10, loss_type="ce")).eval()
    seq, _, _ = _inputs()
    pos = torch.roll(seq, -1, dims=1)
    pos[seq == 0] = 0
    feats = model(seq).last_hidden_state
    mask = pos != 0
    ref = torch.nn.functional.cross_entropy((feats[mask] @ model.item_emb.weight.T)[:, 1:], pos[mask] - 1)
    torch.testing.assert_close(model(seq, positive_ids=pos).loss, ref)
