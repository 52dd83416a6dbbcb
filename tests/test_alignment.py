"""Stage 1 (collaborative ↔ text alignment): losses, ablations, SBERT top-N caching, save/load, training.

Unit tests use a tiny random BERT as SBERT (MiniLM's tokenizer, hidden 32, 3 layers) and a tiny
nn.Embedding-backed CF stand-in implementing CFRecommenderMixin, so they need no trained model.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from allmrec.alignment.configuration_stage1 import Stage1Config, paper_beta
from allmrec.alignment.embeddings import alignment_report, load_stage1_item_embeddings
from allmrec.alignment.losses import (
    contrastive_matching_loss,
    matching_loss,
    rec_scores,
    reconstruction_loss,
    recommendation_loss,
)
from allmrec.alignment.modeling_stage1 import ALLMRecStage1Model
from allmrec.alignment.samples import Stage1Batch, Stage1Sampler, validation_batches
from allmrec.alignment.sbert import ItemTextInputs, configure_trainable_layers, top_layers_only, transformer_parts
from allmrec.cf.base import CFRecommenderMixin
from allmrec.errors import AllmrecError, CheckpointError

from conftest import TINY_LAYERS  # noqa: E402  (the tiny SBERT fixture lives in conftest)


# ---------------------------------------------------------------------------- helpers / fixtures
class TinyCF(nn.Module, CFRecommenderMixin):
    """CF stand-in: item table + user rep = Linear(mean of history embeddings), with dropout so that
    train/eval mode matters (for --cf-dropout-bug)."""

    def __init__(self, num_items: int, hidden: int = 8, maxlen: int = 10, dropout: float = 0.5, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.config = SimpleNamespace(num_items=num_items, hidden_size=hidden, maxlen=maxlen, model_type="tinycf")
        self.item_emb = nn.Embedding(num_items + 1, hidden, padding_idx=0)
        self.proj = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.eval().requires_grad_(False)

    def user_representation(self, item_seq, user_ids=None):
        emb = self.dropout(self.item_emb(item_seq))
        mask = (item_seq > 0).float().unsqueeze(-1)
        return self.proj((emb * mask).sum(1) / mask.sum(1).clamp(min=1))

    def item_embeddings(self, item_ids):
        return self.item_emb(item_ids)


def _tiny_sbert(path):
    from allmrec.alignment.sbert import load_sbert

    return load_sbert(path)


def _config(**kw) -> Stage1Config:
    base = dict(item_dim=8, latent_dim=16, sbert_dim=32, alpha=0.5, beta=0.2)
    base.update(kw)
    return Stage1Config(**base)


def _random_inputs(rows=6, d=8, s=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        user_representation=torch.randn(rows, d, generator=g),
        pos_item_embeddings=torch.randn(rows, d, generator=g),
        neg_item_embeddings=torch.randn(rows, d, generator=g),
        text_embeddings=torch.randn(2 * rows, s, generator=g),
        pos_text_index=torch.arange(rows),
        neg_text_index=torch.arange(rows, 2 * rows),
    )


# ---------------------------------------------------------------------------- loss terms, hand-computed
def test_matching_loss_hand_computed():
    e = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    q = torch.tensor([[1.0, 1.0], [1.0, 3.0]])
    assert matching_loss(e, q).item() == pytest.approx((1 + 0 + 0 + 4) / 4)


def test_contrastive_matching_loss_hand_computed():
    e = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    # squared distances q_i ↔ e_j: [[0, 1], [1, 0]] → logits −d/τ; each row's CE = log(1 + e^{−1/τ})
    assert contrastive_matching_loss(e, e.clone(), temperature=1.0).item() == pytest.approx(math.log1p(math.exp(-1)), rel=1e-6)
    assert contrastive_matching_loss(e, e.clone(), temperature=0.5).item() == pytest.approx(math.log1p(math.exp(-2)), rel=1e-6)
    constant = torch.full((4, 3), 0.5)  # collapse is not a solution: chance-level loss log U
    assert contrastive_matching_loss(constant, constant, 0.1).item() == pytest.approx(math.log(4), rel=1e-6)


def test_infonce_match_option_in_the_model():
    out = _hand_model(match_loss="infonce", match_temperature=1.0)(**HAND)
    # unique items: 0 = pos (e=[1,2], q=[1,1]), 1 = neg (e=[0,1], q=[1,0]); d²(q_i, e_j) = [[1, 1], [4, 2]]
    d = torch.tensor([[1.0, 1.0], [4.0, 2.0]])
    ce = lambda logits: -torch.log_softmax(logits, 1).diagonal().mean()  # noqa: E731
    assert out.loss_match.item() == pytest.approx(0.5 * (ce(-d) + ce(-d.T)).item(), rel=1e-6)
    assert out.loss_item_recon.item() == pytest.approx(3.0) and out.loss_text_recon.item() == pytest.approx(1.5)


def test_reconstruction_loss_detaches_target_only_when_asked():
    x = torch.tensor([[1.0, 2.0]], requires_grad=True)
    recon = torch.tensor([[0.0, 0.0]], requires_grad=True)
    loss = reconstruction_loss(recon, x, detach_target=True)
    assert loss.item() == pytest.approx((1 + 4) / 2)
    loss.backward()
    assert x.grad is None and recon.grad is not None
    reconstruction_loss(recon, x).backward()
    assert x.grad is not None


def test_rec_scores_dot_and_mean():
    x, v = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0]])
    assert rec_scores(x, v, "dot").item() == pytest.approx(11.0)
    assert rec_scores(x, v, "mean").item() == pytest.approx(5.5)


def test_recommendation_loss_hand_computed():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    pos = torch.tensor([[2.0, 5.0], [0.0, 1.0]])  # dot scores 2, 1
    neg = torch.tensor([[-1.0, 0.0], [3.0, 0.5]])  # dot scores -1, 0.5
    softplus = lambda z: math.log1p(math.exp(z))  # noqa: E731
    expected = (softplus(-2) + softplus(-1)) / 2 + (softplus(-1) + softplus(0.5)) / 2
    assert recommendation_loss(x, pos, neg, "dot").item() == pytest.approx(expected, rel=1e-6)


def _hand_model(**kw) -> ALLMRecStage1Model:
    """2-d everything, identity activation, weights chosen so every term is easy to compute by hand:
    e = E, f_I^dec = 2·I; q = Q/2, f_T^dec = I."""
    cfg = Stage1Config(item_dim=2, latent_dim=2, sbert_dim=2, encoder_activation="identity", alpha=0.5, beta=0.2, **kw)
    m = ALLMRecStage1Model(cfg)
    with torch.no_grad():
        for lin, scale in ((m.item_autoencoder.encoder[0], 1.0), (m.item_autoencoder.decoder, 2.0),
                           (m.text_autoencoder.encoder[0], 0.5), (m.text_autoencoder.decoder, 1.0)):
            lin.weight.copy_(scale * torch.eye(2))
            lin.bias.zero_()
    return m


HAND = dict(
    user_representation=torch.tensor([[1.0, 0.0]]),
    pos_item_embeddings=torch.tensor([[1.0, 2.0]]),
    neg_item_embeddings=torch.tensor([[0.0, 1.0]]),
    text_embeddings=torch.tensor([[2.0, 2.0], [2.0, 0.0]]),
    pos_text_index=torch.tensor([0]),
    neg_text_index=torch.tensor([1]),
)


def test_stage1_objective_hand_computed():
    out = _hand_model()(**HAND)
    # match: e_pos=[1,2] vs q_pos=[1,1] → 0.5; e_neg=[0,1] vs q_neg=[1,0] → 1.0
    assert out.loss_match.item() == pytest.approx(1.5)
    # item recon: 2E vs E → mean(E²): [1,2] → 2.5, [0,1] → 0.5
    assert out.loss_item_recon.item() == pytest.approx(3.0)
    # text recon: q=[1,1] vs Q=[2,2] → 1.0; q=[1,0] vs Q=[2,0] → 0.5
    assert out.loss_text_recon.item() == pytest.approx(1.5)
    # rec: x=[1,0]; pos recon [2,4] → s=2; neg recon [0,2] → s=0
    rec = math.log1p(math.exp(-2)) + math.log(2)
    assert out.loss_rec.item() == pytest.approx(rec, rel=1e-6)
    assert out.loss.item() == pytest.approx(1.5 + 0.5 * 3.0 + 0.2 * 1.5 + rec, rel=1e-6)


def test_rec_score_mean_option_divides_by_dimension():
    out = _hand_model(rec_score="mean")(**HAND)
    assert out.loss_rec.item() == pytest.approx(math.log1p(math.exp(-1)) + math.log(2), rel=1e-6)


# ---------------------------------------------------------------------------- ablation flags
@pytest.mark.parametrize(
    "flag, term, silent_params",
    [
        ("use_match_loss", "match", []),
        ("use_item_recon_loss", "item_recon", []),
        ("use_text_recon_loss", "text_recon", ["text_autoencoder.decoder"]),
        ("use_rec_loss", "rec", []),
    ],
)
def test_ablation_flag_removes_exactly_its_term(flag, term, silent_params):
    torch.manual_seed(0)
    full = ALLMRecStage1Model(_config())
    ablated = ALLMRecStage1Model(_config(**{flag: False}))
    ablated.load_state_dict(full.state_dict())
    inputs = _random_inputs()
    f, a = full(**inputs), ablated(**inputs)
    assert getattr(a, f"loss_{term}") is None
    weight = {"item_recon": 0.5, "text_recon": 0.2}.get(term, 1.0)
    assert a.loss.item() == pytest.approx(f.loss.item() - weight * getattr(f, f"loss_{term}").item(), rel=1e-5)
    a.loss.backward()
    for name, p in ablated.named_parameters():
        if any(name.startswith(s) for s in silent_params):
            assert p.grad is None, name


def test_without_match_and_text_recon_the_text_path_is_never_used():
    torch.manual_seed(0)
    m = ALLMRecStage1Model(_config(use_match_loss=False, use_text_recon_loss=False))
    inputs = _random_inputs()
    del inputs["text_embeddings"]
    out = m(**inputs)  # no text inputs needed at all
    out.loss.backward()
    assert all(p.grad is None for p in m.text_autoencoder.parameters())


def test_without_item_recon_and_rec_the_item_decoder_gets_no_gradient():
    torch.manual_seed(0)
    m = ALLMRecStage1Model(_config(use_item_recon_loss=False, use_rec_loss=False))
    m(**_random_inputs()).loss.backward()
    assert all(p.grad is None for p in m.item_autoencoder.decoder.parameters())
    assert m.item_autoencoder.encoder[0].weight.grad is not None  # still trained by L_match


def test_removed_rec_loss_ignores_the_user_representation():
    torch.manual_seed(0)
    m = ALLMRecStage1Model(_config(use_rec_loss=False))
    a, b = _random_inputs(), _random_inputs()
    b["user_representation"] = b["user_representation"] * 100
    assert m(**a).loss.item() == pytest.approx(m(**b).loss.item())


def test_config_validation():
    with pytest.raises(AllmrecError, match="every loss is disabled"):
        _config(use_match_loss=False, use_item_recon_loss=False, use_text_recon_loss=False, use_rec_loss=False)
    with pytest.raises(AllmrecError, match="rec_score"):
        _config(rec_score="cosine")
    with pytest.raises(AllmrecError, match="encoder_activation"):
        _config(encoder_activation="swish")
    assert paper_beta("movie") == 0.5 and paper_beta("game") == 0.5 and paper_beta("item") == 0.2
    cfg = Stage1Config()
    assert (cfg.alpha, cfg.latent_dim, cfg.encoder_activation, cfg.rec_score) == (0.5, 128, "sigmoid", "dot")


def test_sigmoid_encoder_outputs_lie_in_unit_interval():
    torch.manual_seed(0)
    m = ALLMRecStage1Model(_config())
    e = m.encode_items(torch.randn(50, 8) * 10)
    assert e.min() >= 0 and e.max() <= 1


# ---------------------------------------------------------------------------- SBERT: top-N caching, save/load
TEXTS = ["", "Star Wars (1977) Action Sci-Fi", "Toy Story (1995) Animation", "Heat", "a long text " * 5]


def test_top_layer_cache_equals_full_forward_when_frozen(tiny_sbert_path):
    sbert = _tiny_sbert(tiny_sbert_path)
    sbert.eval()
    for n in (1, 2, TINY_LAYERS):
        m = ALLMRecStage1Model(_config(sbert_train_layers=n), sbert=sbert)
        inputs = ItemTextInputs(sbert, TEXTS, cached_from_layer=TINY_LAYERS - n)
        ids = torch.tensor([4, 1, 3, 3, 2])
        feats = inputs.features(ids)
        with torch.no_grad():
            cached = m.embed_texts(feats)
            feats.pop("cached_hidden_states")
            full = m.embed_texts(feats)
            reference = torch.as_tensor(sbert.encode([TEXTS[i] for i in ids.tolist()]))
        torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(full, reference, atol=1e-5, rtol=1e-5)
    assert len(transformer_parts(sbert).layers) == TINY_LAYERS  # layer list restored


def test_top_layers_only_restores_the_model_after_an_error(tiny_sbert_path):
    sbert = _tiny_sbert(tiny_sbert_path)
    parts = transformer_parts(sbert)
    embeddings = parts.hf_model.embeddings
    with pytest.raises(RuntimeError):
        with top_layers_only(sbert, 1, torch.zeros(1, 2, 32)):
            raise RuntimeError("boom")
    assert parts.hf_model.embeddings is embeddings and len(transformer_parts(sbert).layers) == TINY_LAYERS


def test_top_n_fine_tuning_only_trains_the_top_layers(tiny_sbert_path):
    sbert = _tiny_sbert(tiny_sbert_path)
    torch.manual_seed(0)
    m = ALLMRecStage1Model(_config(sbert_train_layers=1), sbert=sbert)
    configure_trainable_layers(m.sbert, 1)
    inputs = ItemTextInputs(sbert, TEXTS, cached_from_layer=TINY_LAYERS - 1)
    x = _random_inputs(rows=2)
    del x["text_embeddings"]
    x["text_features"] = inputs.features(torch.tensor([1, 2, 3, 4]))
    m.train()
    m(**x).loss.backward()
    layers = transformer_parts(m.sbert).layers
    assert all(p.grad is not None for p in layers[-1].parameters() if p.requires_grad)
    assert all(p.grad is None and not p.requires_grad for p in layers[0].parameters())
    assert all(p.grad is None for p in transformer_parts(m.sbert).hf_model.embeddings.parameters())


def test_configure_trainable_layers_rejects_too_many(tiny_sbert_path):
    with pytest.raises(AllmrecError, match="exceeds"):
        configure_trainable_layers(_tiny_sbert(tiny_sbert_path), TINY_LAYERS + 1)


def test_save_then_load_gives_identical_embeddings(tiny_sbert_path, tmp_path):
    sbert = _tiny_sbert(tiny_sbert_path)
    torch.manual_seed(0)
    m = ALLMRecStage1Model(_config(), sbert=sbert)
    # one optimisation step so that the saved SBERT differs from the one it started from
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    x = _random_inputs(rows=2)
    del x["text_embeddings"]
    x["text_features"] = ItemTextInputs(sbert, TEXTS).features(torch.tensor([1, 2, 3, 4]))
    m.train()
    m(**x).loss.backward()
    opt.step()
    m.save_pretrained(tmp_path / "s1")
    assert (tmp_path / "s1" / "sbert" / "modules.json").is_file()
    loaded = ALLMRecStage1Model.from_pretrained(tmp_path / "s1")
    E = torch.randn(5, 8)
    torch.testing.assert_close(loaded.encode_items(E), m.eval().encode_items(E), atol=0, rtol=0)
    torch.testing.assert_close(loaded.encode_texts(TEXTS[1:]), m.encode_texts(TEXTS[1:]), atol=0, rtol=0)
    start = _tiny_sbert(tiny_sbert_path)
    assert not torch.allclose(start.encode(TEXTS[1:2], convert_to_tensor=True), loaded.sbert.encode(TEXTS[1:2], convert_to_tensor=True))
    json_cfg = json.loads((tmp_path / "s1" / "config.json").read_text())
    assert json_cfg["model_type"] == "allmrec_stage1" and json_cfg["latent_dim"] == 16


def test_from_pretrained_without_sbert_folder_is_a_checkpoint_error(tmp_path):
    ALLMRecStage1Model(_config()).save_pretrained(tmp_path / "s1")
    with pytest.raises(CheckpointError, match="no fine-tuned SBERT"):
        ALLMRecStage1Model.from_pretrained(tmp_path / "s1")
    assert ALLMRecStage1Model.from_pretrained(tmp_path / "s1", load_sbert=False).sbert is None


def test_attach_sbert_with_wrong_dimension(tiny_sbert_path):
    with pytest.raises(CheckpointError, match="sbert_dim"):
        ALLMRecStage1Model(_config(sbert_dim=384), sbert=_tiny_sbert(tiny_sbert_path))


# ---------------------------------------------------------------------------- samples
SEQS = [np.array([1, 2, 3, 4]), np.array([5]), np.array([2, 6, 7]), np.array([8, 9, 1, 2, 3, 4, 5])]


def test_sampler_last_item_rows_and_negatives():
    s = Stage1Sampler(SEQS, num_items=12, maxlen=5, batch_size=2, seed=3)
    batches = list(s.epoch(1))
    users = torch.cat([b.user_ids for b in batches]).tolist()
    assert sorted(users) == [1, 3, 4]  # user 2 has a single training item
    for b in batches:
        for u, seq, pos, neg in zip(b.user_ids.tolist(), b.item_seq, b.pos_items.tolist(), b.neg_items.tolist()):
            train = SEQS[u - 1]
            assert pos == train[-1]
            assert seq[seq > 0].tolist() == train[:-1][-5:].tolist()
            assert 1 <= neg <= 12 and neg not in set(train.tolist())
    again = list(Stage1Sampler(SEQS, num_items=12, maxlen=5, batch_size=2, seed=3).epoch(1))
    assert all(torch.equal(a.neg_items, b.neg_items) and torch.equal(a.user_ids, b.user_ids) for a, b in zip(batches, again))
    other_epoch = torch.cat([b.neg_items for b in s.epoch(2)])
    assert len(other_epoch) == 3


def test_sampler_all_items_mode():
    s = Stage1Sampler(SEQS, num_items=12, maxlen=5, batch_size=10, train_items="all", seed=0, shuffle=False)
    (batch,) = list(s.epoch(1))
    rows_u4 = [(seq[seq > 0].tolist(), pos) for u, seq, pos in zip(batch.user_ids.tolist(), batch.item_seq, batch.pos_items.tolist()) if u == 4]
    # last maxlen=5 positions of user 4's 7 items: t = 2..6, history = train[:t] (last 5 kept)
    assert [p for _, p in rows_u4] == [1, 2, 3, 4, 5]
    assert rows_u4[0][0] == [8, 9] and rows_u4[-1][0] == [9, 1, 2, 3, 4]
    assert len(batch) == 3 + 2 + 5


def test_sampler_shards_are_disjoint_and_equal():
    seqs = [np.arange(1, 5) + i for i in range(9)]
    s = Stage1Sampler(seqs, num_items=30, maxlen=5, batch_size=2, seed=0)
    shards = [torch.cat([b.user_ids for b in s.epoch(1, shard=k, num_shards=2)]).tolist() for k in range(2)]
    assert len(shards[0]) == len(shards[1]) == 4 and not set(shards[0]) & set(shards[1])


def test_unique_items_index_back_to_rows():
    b = Stage1Batch(torch.tensor([1, 2, 3]), torch.zeros(3, 4, dtype=torch.long), torch.tensor([5, 7, 5]), torch.tensor([7, 9, 2]))
    unique, pos_i, neg_i = b.unique_items()
    assert unique.tolist() == [2, 5, 7, 9]
    assert torch.equal(unique[pos_i], b.pos_items) and torch.equal(unique[neg_i], b.neg_items)


# ---------------------------------------------------------------------------- alignment report
def test_alignment_report_perfect_and_collapsed():
    g = torch.Generator().manual_seed(0)
    e = torch.cat([torch.zeros(1, 4), torch.rand(30, 4, generator=g)])
    perfect = alignment_report(e, e.clone())
    assert perfect["retrieval"]["text_to_joint"]["acc@1"] == 1.0 and perfect["distance"]["matched_mean"] == 0.0
    assert perfect["distance"]["shuffled_mean"] > 0
    collapsed = alignment_report(torch.full((31, 4), 0.5), torch.full((31, 4), 0.5))
    assert collapsed["retrieval"]["text_to_joint"]["acc@1"] == 0.0  # ties count against the item
    assert collapsed["variance"]["joint"]["max"] == 0.0
    noisy = alignment_report(e, e + 0.01 * torch.randn(31, 4, generator=g))
    assert noisy["distance"]["matched_mean"] < noisy["distance"]["shuffled_mean"]
    assert noisy["retrieval"]["chance_acc@1"] == pytest.approx(1 / 30)


# ---------------------------------------------------------------------------- end-to-end training
def _train_args(tiny_data, tmp_path, sbert, **kw):
    from allmrec.alignment.training import Stage1TrainingArguments

    base = dict(data=str(tiny_data), cf="unused-tiny-cf", out=str(tmp_path / "s1"), epochs=2, batch_size=8, sbert=sbert,
                show_progress=False, seed=0)
    base.update(kw)
    return Stage1TrainingArguments(**base)


@pytest.fixture
def tiny_cf(monkeypatch, tiny_data):
    """Serve the TinyCF stand-in through allmrec.cf.load_cf_model."""
    import allmrec.cf
    from allmrec.data.dataset import PreparedDataset

    ds = PreparedDataset.load(tiny_data)
    cf = TinyCF(ds.num_items, hidden=8, maxlen=10)
    monkeypatch.setattr(allmrec.cf, "load_cf_model", lambda path, **kw: cf, raising=False)
    return cf


def test_train_stage1_end_to_end(tiny_data, tiny_cf, tiny_sbert_path, tmp_path):
    from allmrec.alignment.training import train_stage1
    from allmrec.data.dataset import PreparedDataset

    log = train_stage1(_train_args(tiny_data, tmp_path, tiny_sbert_path, epochs=3))
    out = tmp_path / "s1"
    ds = PreparedDataset.load(tiny_data)
    assert {"config.json", "model.safetensors", "sbert", "item_embeddings.safetensors", "alignment_report.json",
            "training_log.json"} <= {p.name for p in out.iterdir()}
    assert not (tmp_path / ".s1.work").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["cf_model_path"].endswith("unused-tiny-cf") and cfg["latent_dim"] == 128 and cfg["beta"] == 0.5  # movie domain
    emb = load_stage1_item_embeddings(out)
    assert emb["joint"].shape == emb["text"].shape == (ds.num_items + 1, 128)
    assert emb["joint"].dtype == torch.float32 and not emb["joint"][0].any() and not emb["text"][0].any()
    model = ALLMRecStage1Model.from_pretrained(out)
    ids = torch.arange(1, ds.num_items + 1)
    torch.testing.assert_close(emb["joint"][1:], model.encode_items(tiny_cf.item_embeddings(ids)), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(emb["text"][1:], model.encode_texts(ds.texts[1:]), atol=1e-5, rtol=1e-4)
    saved_log = json.loads((out / "training_log.json").read_text())
    assert len(saved_log["epochs"]) == 3 and saved_log["best_epoch"] in (1, 2, 3)
    for record in saved_log["epochs"]:
        assert set(record["train"]) == {"loss", "match", "item_recon", "text_recon", "rec"}
        assert {"loss", "match", "acc@1", "mrr"} <= set(record["valid"])
    mrrs = [r["valid"]["mrr"] for r in saved_log["epochs"]]
    assert saved_log["early_stopping"]["metric"] == "mrr"
    assert saved_log["best_epoch"] == 1 + mrrs.index(max(mrrs))  # first epoch reaching the best MRR
    report = json.loads((out / "alignment_report.json").read_text())
    assert report["n_items"] == ds.num_items and 0 <= report["retrieval"]["text_to_joint"]["acc@1"] <= 1
    assert log["alignment_report"] == report
    with pytest.raises(AllmrecError, match="already exists"):
        train_stage1(_train_args(tiny_data, tmp_path, tiny_sbert_path))


def test_training_is_seeded(tiny_data, tiny_cf, tiny_sbert_path, tmp_path):
    from allmrec.alignment.training import train_stage1

    a = train_stage1(_train_args(tiny_data, tmp_path / "a", tiny_sbert_path, epochs=1))
    b = train_stage1(_train_args(tiny_data, tmp_path / "b", tiny_sbert_path, epochs=1))
    assert a["epochs"][0]["train"] == b["epochs"][0]["train"]
    ea, eb = load_stage1_item_embeddings(tmp_path / "a" / "s1"), load_stage1_item_embeddings(tmp_path / "b" / "s1")
    assert torch.equal(ea["joint"], eb["joint"]) and torch.equal(ea["text"], eb["text"])


@pytest.mark.parametrize(
    "kw",
    [
        dict(sbert_train_layers=0, use_rec_loss=False),  # frozen SBERT: Q computed once
        dict(sbert_train_layers=2, train_items="all", rec_score="mean", cf_dropout_bug=True),
        dict(use_match_loss=False, use_text_recon_loss=False, patience=1),  # text path unused: stops on the loss
        dict(sbert_train_layers=1, mixed_precision="bf16"),  # half-precision cache + autocast (CPU bf16 here)
    ],
)
def test_training_variants_run(tiny_data, tiny_cf, tiny_sbert_path, tmp_path, kw):
    from allmrec.alignment.training import train_stage1

    log = train_stage1(_train_args(tiny_data, tmp_path, tiny_sbert_path, **kw))
    cfg = json.loads((tmp_path / "s1" / "config.json").read_text())
    for key, value in kw.items():
        if key not in ("patience", "mixed_precision"):
            assert cfg[key] == value
    assert log["early_stopping"]["metric"] == ("loss" if kw.get("use_match_loss", True) is False else "mrr")
    terms = set(log["epochs"][0]["train"])
    assert ("rec" in terms) == kw.get("use_rec_loss", True)
    assert ("match" in terms) == kw.get("use_match_loss", True)
    emb = load_stage1_item_embeddings(tmp_path / "s1")
    assert torch.isfinite(emb["text"]).all() and torch.isfinite(emb["joint"]).all()


def test_frozen_sbert_is_saved_unchanged(tiny_data, tiny_cf, tiny_sbert_path, tmp_path):
    from allmrec.alignment.training import train_stage1

    train_stage1(_train_args(tiny_data, tmp_path, tiny_sbert_path, epochs=1, sbert_train_layers=0))
    before = _tiny_sbert(tiny_sbert_path).state_dict()
    after = ALLMRecStage1Model.from_pretrained(tmp_path / "s1").sbert.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_cli_flags_map_to_training_arguments():
    from allmrec.alignment.cli import args_to_training_arguments
    from allmrec.cli import build_parser

    args = build_parser().parse_args(
        "train stage1 --data D --cf M --out S --epochs 3 --batch-size 4 --lr 0.001 --sbert all-minilm-l6-v2 --freeze-sbert "
        "--alpha 0.1 --beta 0.75 --no-match --no-item-recon --rec-score mean --all-items --seed 7 --overwrite".split()
    )
    t = args_to_training_arguments(args)
    assert (t.epochs, t.batch_size, t.lr, t.sbert, t.sbert_train_layers) == (3, 4, 0.001, "all-minilm-l6-v2", 0)
    assert (t.alpha, t.beta, t.use_match_loss, t.use_item_recon_loss, t.use_text_recon_loss, t.use_rec_loss) == (
        0.1, 0.75, False, False, True, True)
    assert (t.rec_score, t.train_items, t.seed, t.overwrite) == ("mean", "all", 7, True)
    t2 = args_to_training_arguments(build_parser().parse_args(
        "train stage1 --data D --cf M --out S --sbert-train-layers 2 --match-loss infonce --match-temperature 0.05".split()))
    assert t2.sbert_train_layers == 2 and t2.beta is None and t2.epochs == 10 and t2.batch_size == 32 and t2.lr == 1e-4
    assert (t2.match_loss, t2.match_temperature, t2.early_stopping_metric, t2.patience) == ("infonce", 0.05, "mrr", 5)
    with pytest.raises(SystemExit):
        build_parser().parse_args("train stage1 --data D --cf M --out S --freeze-sbert --sbert-train-layers 2".split())


def test_validation_rows_use_prepared_candidates(tiny_data):
    from allmrec.data.dataset import PreparedDataset

    ds = PreparedDataset.load(tiny_data)
    rows = ds.eval_rows("valid")
    batches = validation_batches(ds, maxlen=10, batch_size=16)
    pos = torch.cat([b.pos_items for b in batches]).numpy()
    neg = torch.cat([b.neg_items for b in batches]).numpy()
    assert np.array_equal(pos, rows["target"]) and not np.any(pos == neg)
    assert all(n in c for n, c in zip(neg, rows["candidates"]))


# ---------------------------------------------------------------------------- real data (slow)
@pytest.mark.slow
def test_stage1_on_ml100k_with_minilm(ml100k_data, tmp_path):
    """A short real stage 1 on ml-100k: SASRec briefly trained by `allmrec train cf`, real MiniLM. SBERT is
    frozen (the Table 8 ablation; Q is computed once) so that 20 epochs fit the CI budget on a CPU, and
    lr is 1e-3 because ml-100k gives only 30 steps per epoch. The alignment must be far from chance."""
    import torch

    from allmrec.cli import main

    cf = tmp_path / "sasrec"
    assert main(["train", "cf", "--data", str(ml100k_data), "--model", "sasrec", "--out", str(cf), "--epochs", "3",
                 "--no-progress"]) == 0
    out = tmp_path / "s1"
    assert main(["train", "stage1", "--data", str(ml100k_data), "--cf", str(cf), "--out", str(out), "--sbert",
                 "all-minilm-l6-v2", "--freeze-sbert", "--lr", "1e-3", "--epochs", "20", "--patience", "0",
                 "--no-progress"]) == 0
    log = json.loads((out / "training_log.json").read_text())
    first, last = log["epochs"][0]["train"], log["epochs"][-1]["train"]
    for term in ("loss", "item_recon", "text_recon", "rec"):
        assert last[term] < first[term], term
    report = json.loads((out / "alignment_report.json").read_text())
    assert report["n_items"] == 1349
    assert report["variance"]["joint"]["min"] > 1e-5 and report["variance"]["text"]["min"] > 1e-5
    assert report["distance"]["matched_mean"] < 0.9 * report["distance"]["shuffled_mean"]
    assert report["retrieval"]["text_to_joint"]["acc@1"] > 5 * report["retrieval"]["chance_acc@1"]
    emb = load_stage1_item_embeddings(out)
    assert emb["joint"].shape == (1350, 128)
    from allmrec.data.dataset import PreparedDataset

    texts = PreparedDataset.load(ml100k_data).texts
    model = ALLMRecStage1Model.from_pretrained(out)  # the saved text path reproduces the stored q_i
    torch.testing.assert_close(model.encode_texts(texts[1:4]), emb["text"][1:4], atol=1e-5, rtol=1e-4)
