"""Baselines on A-LLMRec's footing: TALLRec (LoRA via peft), LLM-Only and MLP-LLM.

Tiny random Llama (hidden 32, 2 layers) with the real SmolLM2 tokenizer, tiny SASRec, the tiny dataset;
one slow test trains TALLRec on the real SmolLM2 for two steps.
"""

from __future__ import annotations

import json
from argparse import Namespace

import numpy as np
import pytest
import torch

from allmrec.cli import main
from allmrec.data.dataset import PreparedDataset
from allmrec.errors import AllmrecError

LATENT = 16
# paper Figure 6 (LLM-Only / TALLRec), pinned character for character (same string as tests/test_prompts.py)
FIG6_TITLES = ["", "Toy Story (1995)", "Heat (1995)", "Fargo (1996)"]
FIG6_PROMPT = (
    'This user has watched "Toy Story (1995)", "Heat (1995)" in the past. Recommend a movie for this user to '
    'watch next from the following set of movie titles, "Fargo (1996)", "Toy Story (1995)". '
    "The recommendation is"
)
FIG6_TARGET = ' "Fargo (1996)"'


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True, eos_token_id=2, pad_token_id=2,
    )).eval()


@pytest.fixture(scope="module")
def inputs(tiny_data, tmp_path_factory):
    """(data, llm dir, CF dir, stage-1 dir) on the tiny dataset, written the way the earlier stages write them."""
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    from allmrec.assets import resolve_llm
    from allmrec.cf import SASRecConfig, SASRecModel

    root = tmp_path_factory.mktemp("baselines")
    ds = PreparedDataset.load(tiny_data)
    tiny_llama().save_pretrained(root / "llm")
    AutoTokenizer.from_pretrained(resolve_llm("smollm2-135m-instruct")).save_pretrained(root / "llm")
    torch.manual_seed(0)
    SASRecModel(SASRecConfig(num_items=ds.num_items, hidden_size=8, num_blocks=1, maxlen=12)).save_pretrained(root / "cf")
    s1 = root / "stage1"
    s1.mkdir()
    (s1 / "config.json").write_text(json.dumps({"model_type": "allmrec_stage1", "cf_model_path": str(root / "cf"), "latent_dim": LATENT}))
    g = torch.Generator().manual_seed(0)
    joint, text = torch.rand(ds.num_items + 1, LATENT, generator=g), torch.rand(ds.num_items + 1, LATENT, generator=g)
    joint[0] = text[0] = 0
    save_file({"joint": joint, "text": text}, str(s1 / "item_embeddings.safetensors"))
    return Namespace(data=tiny_data, llm=root / "llm", cf=root / "cf", stage1=s1, root=root)


@pytest.fixture(scope="module")
def tallrec_dir(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("tallrec") / "adapter"
    rc = main(["train", "tallrec", "--data", str(inputs.data), "--llm", str(inputs.llm), "--out", str(out),
               "--max-steps", "4", "--eval-every", "2", "--valid-users", "6", "--lr", "1e-2", "--no-progress"])
    assert rc == 0
    return out


def tallrec_args(inputs, out, **kw):
    from allmrec.baselines.training import TallRecTrainingArguments

    return TallRecTrainingArguments(data=str(inputs.data), llm=str(inputs.llm), out=str(out), progress=False, **kw)


# ------------------------------------------------------------------------------------------- LoRA targets
def _tiny(model_type: str):
    from transformers import AutoConfig, AutoModelForCausalLM

    kw = {
        "llama": dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=64),
        "opt": dict(hidden_size=16, ffn_dim=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=64, word_embed_proj_dim=16),
        "gpt2": dict(n_embd=16, n_layer=1, n_head=2, vocab_size=64),
        "gpt_neox": dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=64),
    }[model_type]
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **kw))


@pytest.mark.parametrize("model_type,expected", [
    ("llama", ["q_proj", "v_proj"]), ("opt", ["q_proj", "v_proj"]), ("gpt2", ["c_attn"]), ("gpt_neox", ["query_key_value"]),
])
def test_lora_targets_are_the_attention_query_value_projections_of_each_architecture(model_type, expected):
    from allmrec.baselines.lora import resolve_lora_targets

    assert resolve_lora_targets(_tiny(model_type)) == expected


def test_lora_targets_fallback_and_errors(monkeypatch):
    import peft.utils.constants as constants

    from allmrec.baselines.lora import resolve_lora_targets

    model = _tiny("llama")
    # an architecture peft has no default for: found by the usual query/value names
    monkeypatch.setitem(constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING, "llama", ["nonexistent"])
    assert resolve_lora_targets(model) == ["q_proj", "v_proj"]
    assert resolve_lora_targets(model, ["k_proj", "o_proj"]) == ["k_proj", "o_proj"]
    with pytest.raises(AllmrecError, match="not Linear layers"):
        resolve_lora_targets(model, ["attention"])
    for name, module in list(model.named_modules()):
        if name.endswith(("q_proj", "v_proj")):
            parent = model.get_submodule(name.rsplit(".", 1)[0])
            setattr(parent, "w" + name.rsplit(".", 1)[1], getattr(parent, name.rsplit(".", 1)[1]))
            delattr(parent, name.rsplit(".", 1)[1])
    with pytest.raises(AllmrecError, match="--lora-target-modules"):
        resolve_lora_targets(model)


def test_lora_config_is_tallrecs_and_only_lora_weights_are_trainable():
    from allmrec.baselines.lora import add_lora, build_lora_config

    llm = tiny_llama()
    cfg = build_lora_config(llm)
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.bias, cfg.task_type) == (8, 16, 0.05, "none", "CAUSAL_LM")
    assert sorted(cfg.target_modules) == ["q_proj", "v_proj"]
    peft_model = add_lora(llm, base_model_name_or_path="/some/base")
    trainable = {n: p.numel() for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    # 2 layers x (q: 32 -> 32, v: 32 -> 16 with 2 KV heads of 8) x r (in + out)
    assert sum(trainable.values()) == 2 * (8 * (32 + 32) + 8 * (32 + 16))
    assert peft_model.peft_config["default"].base_model_name_or_path == "/some/base"


# ------------------------------------------------------------------------------------------- prompts
def test_tallrec_prompt_and_target_render_as_pinned_strings(inputs, tmp_path):
    from allmrec.baselines.training import build_tallrec
    from allmrec.model.processing_allmrec import IGNORE_INDEX
    from allmrec.model.training import collate

    ds = PreparedDataset.load(inputs.data)
    model = build_tallrec(tallrec_args(inputs, tmp_path / "x"), ds, "cpu")
    prompt = model.prompt_builder().build([1, 2], [3, 1], FIG6_TITLES, target_id=3)
    assert (prompt.text, prompt.target, prompt.item_ids) == (FIG6_PROMPT, FIG6_TARGET, ())
    # training batch: loss only on the quoted title + EOS; everything before it is masked
    model.item_titles = FIG6_TITLES
    batch = collate(model, [{"user_id": 1, "history": np.array([1, 2]), "candidates": np.array([3, 1]), "target": 3}])
    labels, ids = batch["labels"][0], batch["input_ids"][0]
    on = labels != IGNORE_INDEX
    assert model.tokenizer.decode(ids[~on]) == FIG6_PROMPT
    assert model.tokenizer.decode(labels[on]) == FIG6_TARGET + model.tokenizer.eos_token
    assert batch["item_ids"].shape == (1, 0)


# ------------------------------------------------------------------------------------------- TALLRec
def test_a_training_step_changes_only_lora_weights(inputs, tmp_path):
    from allmrec.baselines.training import build_tallrec
    from allmrec.model.training import Stage2Samples, collate

    ds = PreparedDataset.load(inputs.data)
    model = build_tallrec(tallrec_args(inputs, tmp_path / "x"), ds, "cpu").train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    samples = Stage2Samples(ds, 19, seed=0)
    batch = collate(model, [samples.sample(i, 0) for i in range(4)])
    loss = model(**{k: v for k, v in batch.items() if k not in ("cf_input_ids", "user_ids")}).loss
    loss.backward()
    torch.optim.SGD([p for _, p in model.trainable_parameters()], lr=1.0).step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_B" in n for n in changed)  # B starts at 0, so A's gradient is 0 in step one
    assert {n for n, _ in model.trainable_parameters()} == {n for n in before if "lora_" in n}


def test_gradient_checkpointing_gives_the_same_loss_and_lora_gradients(inputs, tmp_path):
    from allmrec.baselines.training import build_tallrec
    from allmrec.model.training import Stage2Samples, collate

    ds = PreparedDataset.load(inputs.data)
    samples = Stage2Samples(ds, 19, seed=0)
    grads = []
    for checkpointing in (False, True):
        model = build_tallrec(tallrec_args(inputs, tmp_path / "x", gradient_checkpointing=checkpointing, lora_dropout=0.0), ds, "cpu")
        model.train()
        assert model.llm.is_activation_checkpointing == checkpointing
        with torch.no_grad():  # non-zero B so that A gets a gradient too
            for n, p in model.trainable_parameters():
                if "lora_B" in n:
                    p.fill_(0.01)
        batch = collate(model, [samples.sample(i, 0) for i in range(2)])
        loss = model(**{k: v for k, v in batch.items() if k not in ("cf_input_ids", "user_ids")}).loss
        loss.backward()
        grads.append((float(loss), {n: p.grad.clone() for n, p in model.trainable_parameters()}))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    assert grads[0][1].keys() == grads[1][1].keys()
    for n in grads[0][1]:
        torch.testing.assert_close(grads[0][1][n], grads[1][1][n], rtol=1e-4, atol=1e-6)
    assert all(float(g.abs().sum()) > 0 for g in grads[1][1].values())


def test_tallrec_writes_a_standard_peft_adapter_with_sidecar(tallrec_dir, inputs):
    from peft import AutoPeftModelForCausalLM
    from safetensors import safe_open

    files = {p.name for p in tallrec_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "allmrec_baseline.json",
            "training_log.json", "tokenizer_config.json"} <= files
    assert not [f for f in files if f.startswith(".")]
    cfg = json.loads((tallrec_dir / "adapter_config.json").read_text())
    assert (cfg["r"], cfg["lora_alpha"], cfg["lora_dropout"], cfg["task_type"]) == (8, 16, 0.05, "CAUSAL_LM")
    assert sorted(cfg["target_modules"]) == ["q_proj", "v_proj"]
    assert cfg["base_model_name_or_path"] == str(inputs.llm)
    with safe_open(str(tallrec_dir / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert keys and all("lora_A" in k or "lora_B" in k for k in keys)
        saved = {k: f.get_tensor(k) for k in keys}
    assert any(float(v.abs().sum()) > 0 for k, v in saved.items() if "lora_B" in k)  # it trained
    side = json.loads((tallrec_dir / "allmrec_baseline.json").read_text())
    ds = PreparedDataset.load(inputs.data)
    assert (side["model_type"], side["prompt_style"], side["dataset_name"], side["num_items"]) == ("tallrec", "fig6", ds.name, ds.num_items)
    assert side["lora"]["target_modules"] == ["q_proj", "v_proj"] and side["llm"] == str(inputs.llm)
    log = json.loads((tallrec_dir / "training_log.json").read_text())
    assert log["steps"] == 4 and [v["step"] for v in log["validations"]] == [2, 4]
    assert log["trainable_parameters"] == 2 * (8 * (32 + 32) + 8 * (32 + 16))

    # the standard loader rebuilds base + adapter from adapter_config.json alone, with the trained weights
    loaded = AutoPeftModelForCausalLM.from_pretrained(str(tallrec_dir))
    state = {k: v for k, v in loaded.state_dict().items() if "lora_" in k}
    assert len(state) == len(saved)
    for k, v in saved.items():
        match = [s for s in state if s.replace(".default", "") == k]
        assert len(match) == 1 and torch.equal(state[match[0]], v)


def test_saved_adapter_scores_like_the_trained_model(tallrec_dir, inputs, tmp_path):
    """load_tallrec and AutoPeftModelForCausalLM give the same model; the LoRA changes the LLM's output."""
    from peft import AutoPeftModelForCausalLM

    from allmrec.baselines.text_model import load_tallrec

    model = load_tallrec(tallrec_dir, device="cpu")
    auto = AutoPeftModelForCausalLM.from_pretrained(str(tallrec_dir)).eval()
    ids = model.tokenizer([FIG6_PROMPT + FIG6_TARGET], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ours = model.llm(input_ids=ids).logits
        theirs = auto(input_ids=ids).logits
        base = tiny_llama()(input_ids=ids).logits  # same seed = the saved base LLM
    torch.testing.assert_close(ours, theirs)
    assert not torch.allclose(ours, base, atol=1e-4)
    assert not any(p.requires_grad for p in model.parameters())
    merged = load_tallrec(tallrec_dir, device="cpu", merge_lora=True)
    assert not merged.is_peft and not [n for n, _ in merged.named_parameters() if "lora_" in n]
    with torch.no_grad():
        torch.testing.assert_close(merged.llm(input_ids=ids).logits, ours, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["rank", "generate"])
def test_allmrec_evaluate_scores_a_tallrec_adapter(tallrec_dir, inputs, tmp_path, mode):
    out = tmp_path / f"{mode}.json"
    assert main(["evaluate", "--model", str(tallrec_dir), "--data", str(inputs.data), "--out", str(out),
                 "--mode", mode, "--batch-size", "8"]) == 0
    res = json.loads(out.read_text())
    ds = PreparedDataset.load(inputs.data)
    assert res["model_type"] == "tallrec" and res["mode"] == mode and res["soft_tokens"] is False
    assert res["n_users"] == len(ds.eval_rows("test")["user_id"])
    assert res["candidate_fingerprint"] == ds.candidate_fingerprint("test") and res["prompt_style"] == "fig6"
    expected = {"hit@1", "hit@5", "hit@10", "ndcg@10", "mrr"} if mode == "rank" else {"hit@1", "hit@1_lenient", "valid_rate"}
    assert set(res["metrics"]) == expected
    assert set(res["scenarios"]) >= {"warm", "mid", "cold"}
    assert sum(s["n_users"] for s in res["scenarios"].values()) == res["n_users"]


def test_tallrec_adapter_refuses_another_catalogue(tallrec_dir, tmp_path):
    from allmrec.data.prepare import PrepareOptions, prepare

    from conftest import write_tiny_recbole

    src = write_tiny_recbole(tmp_path / "raw", n_users=30, n_items=36)
    other = tmp_path / "other"
    prepare(PrepareOptions(source=str(src), name="other", domain="movie"), other, progress=False)
    rc = main(["evaluate", "--model", str(tallrec_dir), "--data", str(other), "--out", str(tmp_path / "r.json"), "--mode", "rank"])
    assert rc == 2
    # paper Table 7: a text-only model may score another catalogue when that is the point
    rc = main(["evaluate", "--model", str(tallrec_dir), "--data", str(other), "--out", str(tmp_path / "x.json"), "--mode", "rank",
               "--cross-domain", "--max-users", "4"])
    assert rc == 0 and json.loads((tmp_path / "x.json").read_text())["cross_domain"] is True


def test_bad_tallrec_options_are_one_line_errors(inputs, tmp_path, capsys):
    base = ["train", "tallrec", "--data", str(inputs.data), "--llm", str(inputs.llm), "--no-progress"]
    assert main(base + ["--out", str(tmp_path / "a"), "--lora-r", "0"]) == 2
    assert "--lora-r" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "b"), "--lora-target-modules", "nope"]) == 2
    assert "not Linear layers" in capsys.readouterr().err
    (tmp_path / "c").mkdir()
    assert main(base + ["--out", str(tmp_path / "c")]) == 2
    assert "--overwrite" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- LLM-Only
def test_llm_only_rank_scores_equal_an_unbatched_reference(inputs):
    """The shared scorers (packed, the default, and the KV-cache path), on a text-only prompt, = sum log P(' "Title"' +
    EOS | prompt) computed directly."""
    from allmrec.baselines.text_model import build_llm_only
    from allmrec.model.inference import rank_scores, subset_rows
    from allmrec.model.processing_allmrec import encode_target

    ds = PreparedDataset.load(inputs.data)
    model = build_llm_only(str(inputs.llm), ds.num_items, device="cpu")
    rows = subset_rows(ds.eval_rows("test"), 3, seed=0)
    scores = rank_scores(model, rows, ds.titles, batch_size=3, progress=False)
    model.config.rank_scoring = "cache"
    np.testing.assert_allclose(rank_scores(model, rows, ds.titles, batch_size=3, progress=False), scores, atol=1e-4)
    builder = model.prompt_builder()
    for r in range(3):
        prompt = builder.build(rows["history"][r], rows["candidates"][r], ds.titles)
        assert "[UserRep]" not in prompt.text and "[HistoryEmb]" not in prompt.text
        p_ids = model.tokenizer(prompt.text)["input_ids"]
        for c in range(0, 20, 7):
            cont = encode_target(model.tokenizer, builder.target_text(ds.titles[rows["candidates"][r][c]]))
            with torch.no_grad():
                logits = model.llm(input_ids=torch.tensor([p_ids + cont])).logits[0].float()
            logp = torch.log_softmax(logits[len(p_ids) - 1:-1], -1).gather(-1, torch.tensor(cont)[:, None]).sum()
            assert scores[r, c] == pytest.approx(float(logp), abs=1e-3)


@pytest.mark.parametrize("mode", ["rank", "generate"])
def test_llm_only_evaluates_through_the_evaluate_entry(inputs, tmp_path, mode):
    from allmrec.baselines.evaluate import evaluate_checkpoint
    from allmrec.baselines.llm_only import evaluate_llm_only

    args = Namespace(model=f"llm:{inputs.llm}", data=str(inputs.data), split="test", mode=mode, batch_size=8,
                     item_embedding="auto", out=str(tmp_path / "r.json"))  # no max_users attribute: all users
    res = evaluate_checkpoint(args)
    ds = PreparedDataset.load(inputs.data)
    assert res["model_type"] == "llm-only" and res["model"] == f"llm:{inputs.llm}" and res["mode"] == mode
    assert res["n_users"] == len(ds.eval_rows("test")["user_id"])
    assert res["candidate_fingerprint"] == ds.candidate_fingerprint("test")
    again = evaluate_llm_only(str(inputs.llm), inputs.data, mode=mode, max_users=5, out=tmp_path / "o.json", progress=False)
    assert again["n_users"] == 5 and json.loads((tmp_path / "o.json").read_text())["metrics"] == again["metrics"]
    assert set(again["metrics"]) == set(res["metrics"])


def test_llm_only_needs_a_name():
    from allmrec.baselines.evaluate import evaluate_checkpoint

    with pytest.raises(AllmrecError, match="llm:NAME"):
        evaluate_checkpoint(Namespace(model="llm:", data="x", split="test", mode="rank", batch_size=4))


# ------------------------------------------------------------------------------------------- MLP-LLM
def test_mlpllm_and_allmrec_differ_only_in_the_alignment_module(inputs, tmp_path):
    from allmrec.baselines.mlp_llm import write_identity_alignment
    from allmrec.cf import load_cf_model
    from allmrec.model.training import Stage2TrainingArguments, build_model

    ds = PreparedDataset.load(inputs.data)
    identity = write_identity_alignment(inputs.cf, tmp_path / "identity")

    def build(stage1):
        args = Stage2TrainingArguments(data=str(inputs.data), stage1=str(stage1), out=str(tmp_path / "unused"), llm=str(inputs.llm))
        return build_model(args, ds, "cpu")

    allmrec, mlpllm = build(inputs.stage1), build(identity)
    cf = load_cf_model(inputs.cf)
    d = cf.config.hidden_size
    # what F_I reads: stage-1 e_i (d' = 16 here) vs the raw CF embedding E_i (d = 8)
    all_ids = torch.arange(ds.num_items + 1)
    expected = cf.item_embeddings(all_ids).detach().float()
    expected[0] = 0
    torch.testing.assert_close(mlpllm.item_joint, expected)
    torch.testing.assert_close(mlpllm.item_text, expected)  # no text encoder: text / auto = cf
    assert allmrec.item_joint.shape[1] == LATENT and mlpllm.item_joint.shape[1] == d

    # same modules, same trainable parameters, same frozen LLM and CF model
    sa, sm = allmrec.state_dict_without_llm(), mlpllm.state_dict_without_llm()
    assert sa.keys() == sm.keys()
    differ_in_shape = {k for k in sa if sa[k].shape != sm[k].shape}
    # (+ the per-dimension statistics of those tables under the default input_standardization=zscore)
    assert differ_in_shape == {"item_projector.fc1.weight", "item_joint", "item_text", "item_mean", "item_std"}
    assert [n for n, p in allmrec.named_parameters() if p.requires_grad] == [n for n, p in mlpllm.named_parameters() if p.requires_grad]
    for k in sa:
        if k.startswith("cf_model."):
            assert torch.equal(sa[k], sm[k])
    ca, cm = allmrec.config.to_dict(), mlpllm.config.to_dict()
    assert {k for k in ca if ca[k] != cm.get(k)} == {"latent_dim", "stage1_path"}
    assert (ca["latent_dim"], cm["latent_dim"]) == (LATENT, d)


def test_mlpllm_trains_with_the_stage2_trainer_and_evaluates(inputs, tmp_path, capsys):
    from allmrec.model.modeling_allmrec import ALLMRecForRecommendation

    out = tmp_path / "mlpllm"
    rc = main(["train", "mlpllm", "--data", str(inputs.data), "--cf-model", str(inputs.cf), "--llm", str(inputs.llm),
               "--out", str(out), "--max-steps", "2", "--eval-users", "4", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "MLP-LLM done: 2 steps" in printed and f"checkpoint: {out}" in printed and "nan" not in printed
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["baseline"], cfg["alignment"], cfg["stage1_path"], cfg["latent_dim"]) == ("mlp-llm", "none", None, 8)
    assert cfg["cf_model_path"] == str(inputs.cf)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".mlpllm-identity-")]  # temp dir removed
    log = json.loads((out / "training_log.json").read_text())
    assert log["baseline"] == "mlp-llm" and log["args"]["stage1"] is None and log["steps"] == 2
    model = ALLMRecForRecommendation.from_pretrained(out)
    assert model.item_projector.fc1.in_features == 8 and model.config.baseline == "mlp-llm"
    res_file = tmp_path / "r.json"
    assert main(["evaluate", "--model", str(out), "--data", str(inputs.data), "--out", str(res_file), "--mode", "rank"]) == 0
    res = json.loads(res_file.read_text())
    assert res["n_users"] > 0 and set(res["metrics"]) >= {"hit@1", "ndcg@10"}


def test_mlpllm_needs_a_cf_model(inputs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse: a required option is missing
        main(["train", "mlpllm", "--data", str(inputs.data), "--llm", str(inputs.llm), "--out", str(tmp_path / "m")])
    assert exit_info.value.code == 2 and "--cf-model" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- real SmolLM2
@pytest.mark.slow
def test_tallrec_on_real_smollm2(tiny_data, tmp_path):
    """One LoRA step on SmolLM2-135M-Instruct (Llama arch: q_proj/v_proj in 30 layers), then rank two users."""
    from allmrec.baselines.evaluate import evaluate_checkpoint
    from allmrec.baselines.training import TallRecTrainingArguments, train_tallrec

    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = tmp_path / "tallrec-smol"
    log = train_tallrec(TallRecTrainingArguments(
        data=str(tiny_data), llm="smollm2-135m-instruct", out=str(out), max_steps=1, valid_users=0, progress=False,
    ))
    # 30 layers x r=8 x ((576 + 576) for q_proj + (576 + 192) for v_proj, 3 KV heads of 64)
    assert log["trainable_parameters"] == 30 * 8 * ((576 + 576) + (576 + 192))
    assert log["steps"] == 1 and all(np.isfinite(x["loss"]) for x in log["losses"])
    side = json.loads((out / "allmrec_baseline.json").read_text())
    assert side["llm"] == "smollm2-135m-instruct"
    from allmrec.assets import resolve_llm

    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == resolve_llm("smollm2-135m-instruct")
    res = evaluate_checkpoint(Namespace(model=str(out), data=str(tiny_data), split="test", mode="rank", batch_size=2, max_users=2))
    assert res["n_users"] == 2 and res["model_type"] == "tallrec" and 0 <= res["metrics"]["hit@1"] <= 1
