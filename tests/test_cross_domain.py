"""A-LLMRec on a foreign catalogue (paper Table 7): every item reaches the model through the stage-1 text path.

Tiny models: SASRec (hidden 8), a real stage-1 run with a tiny random SBERT, one stage-2 step on a tiny random Llama;
the foreign catalogue is a second fixture dataset with other items (and another item count).
"""

from __future__ import annotations

import json

import pytest
import torch

from allmrec.cli import main


@pytest.fixture(scope="module")
def trained(stage2_inputs, tiny_sbert_path, tmp_path_factory):
    """(data, stage-1 dir, stage-2 dir): stage 1 and stage 2 trained on the tiny dataset."""
    data, fake_s1, llm = stage2_inputs
    cf = json.loads((fake_s1 / "config.json").read_text())["cf_model_path"]
    root = tmp_path_factory.mktemp("cross")
    s1, s2 = root / "stage1", root / "stage2"
    assert main(["train", "stage1", "--data", str(data), "--cf", cf, "--out", str(s1), "--sbert", tiny_sbert_path,
                 "--epochs", "1", "--no-progress"]) == 0
    assert main(["train", "stage2", "--data", str(data), "--stage1", str(s1), "--llm", str(llm), "--out", str(s2),
                 "--max-steps", "1", "--valid-users", "0", "--match-pretrain-epochs", "1", "--no-progress"]) == 0
    return data, s1, s2


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    from allmrec.data.prepare import PrepareOptions, prepare
    from conftest import write_tiny_recbole

    root = tmp_path_factory.mktemp("foreign")
    src = write_tiny_recbole(root / "raw", n_users=30, n_items=36, n_cold_users=0, seed=5)
    prepare(PrepareOptions(source=str(src), name="foreign", domain="game"), root / "prepared", progress=False)
    return root / "prepared"


def test_transfer_embeds_every_foreign_item_through_the_stage1_text_path(trained, foreign):
    from allmrec.alignment import ALLMRecStage1Model
    from allmrec.data.dataset import PreparedDataset
    from allmrec.model.cross_domain import transfer_to_catalogue
    from allmrec.model.inference import evaluate_model, load_for_inference
    from allmrec.model.modeling_allmrec import left_pad_histories

    _, s1, s2 = trained
    ds = PreparedDataset.load(foreign)
    model = load_for_inference(s2)
    before_fu = {k: v.clone() for k, v in model.user_projector.state_dict().items()}
    trained_cf_rows = model.cf_model.get_input_embeddings().weight.detach().clone()
    transfer_to_catalogue(model, ds)  # the stage-1 path its config records
    stage1 = ALLMRecStage1Model.from_pretrained(str(s1))
    q = stage1.encode_texts(ds.texts[1:])
    assert model.config.num_items == ds.num_items == 36 and model.item_titles == ds.titles
    assert model.config.domain == "game" and model.config.cross_domain["dataset"] == "foreign"
    torch.testing.assert_close(model.item_text[1:], q)
    assert not model.item_text[0].any() and not bool(model.item_train_count.any())  # every foreign item is cold
    rows = model.cf_model.get_input_embeddings().weight.detach()
    with torch.no_grad():
        decoded = stage1.item_autoencoder.decode(q)
        torch.testing.assert_close(rows[1:], decoded)
        torch.testing.assert_close(model.item_joint[1:], stage1.encode_items(decoded))
    assert rows.shape[0] == 37 and trained_cf_rows.shape[0] != 37  # a new table, not the trained one resized
    for k, v in model.user_projector.state_dict().items():  # F_U is what was trained
        torch.testing.assert_close(v, before_fu[k])
    # x^u of a foreign history: the frozen SASRec reading the decoded rows (another history, another x^u)
    x = model.user_representation(left_pad_histories([[1, 2, 3], [7, 8, 9]], model.config.cf_max_seq_len))
    assert x.shape == (2, model.config.cf_hidden_size) and not torch.allclose(x[0], x[1])
    results = evaluate_model(model, ds, split="test", mode="rank", max_users=4, item_embedding="text")
    assert results["n_users"] == 4 and 0.0 <= results["metrics"]["hit@1"] <= 1.0


def test_evaluate_cross_domain_command_and_its_errors(trained, foreign, tmp_path, capsys):
    data, _, s2 = trained
    out = tmp_path / "x.json"
    base = ["evaluate", "--model", str(s2), "--data", str(foreign), "--mode", "rank", "--max-users", "3", "--out", str(out)]
    assert main(base + ["--cross-domain"]) == 0
    res = json.loads(out.read_text())
    assert res["cross_domain"]["dataset"] == "foreign" and "--cross-domain" in res["command"]
    capsys.readouterr()
    assert main(base) != 0  # without --cross-domain the catalogues differ: one line, no traceback
    err = capsys.readouterr().err
    assert "items" in err and "Traceback" not in err
    assert main(base + ["--cross-domain", "--stage1", str(tmp_path / "nowhere")]) != 0
    assert "--stage1" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(s2), "--data", str(data), "--stage1", str(s2), "--out", str(out)]) != 0
    assert "only read with --cross-domain" in capsys.readouterr().err
