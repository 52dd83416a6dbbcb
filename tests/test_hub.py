"""Hub integration over HTTP against the loopback fake Hub (tests/fake_hub.py): the real huggingface_hub /
transformers / peft client code pushes and loads.

Covers: the fake Hub's wire protocol (pinned revisions, 404 error codes, 409 with url, private repos,
validate-yaml); the model card (metadata, model-index per scenario, comparison table, manifest, offline and
server-side validation); `allmrec push` of an A-LLMRec checkpoint and a TALLRec adapter, loaded back at a
pinned revision with identical scores (A-LLMRec also through AutoModel + trust_remote_code); bad input
(missing/corrupt files, LLM tensors in the weights, unknown checkpoint, no token, rejected token, offline,
mismatched LLM, results from other candidates); an interrupted save leaves nothing pushable.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fake_hub import _fake_hub_modules_cache, _fake_hub_server, fake_hub, validate_card_metadata  # noqa: F401 (fixtures)

from allmrec.errors import CheckpointError, DataError

LATENT = 16
HIDDEN = 32


# ---------------------------------------------------------------------------------------------- builders
@pytest.fixture(scope="module")
def tiny_llm_dir(tmp_path_factory) -> Path:
    """A tiny random Llama with the real SmolLM2 tokenizer, saved as a local HF folder (the 'base LLM')."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from allmrec.assets import resolve_llm

    tokenizer = AutoTokenizer.from_pretrained(resolve_llm("smollm2-135m-instruct"))
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        eos_token_id=2, pad_token_id=2, bos_token_id=1,
    )
    out = tmp_path_factory.mktemp("tiny_llm")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def load_llm(path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def build_allmrec(data_dir: Path, llm_dir: Path, seed: int = 0):
    """A fresh A-LLMRec model on the prepared tiny dataset (random projectors, tiny SASRec, random stage-1 tables)."""
    from allmrec.cf import SASRecConfig, SASRecModel
    from allmrec.data.dataset import PreparedDataset
    from allmrec.model import ALLMRecForRecommendation

    dataset = PreparedDataset.load(data_dir)
    n = dataset.num_items
    torch.manual_seed(seed)
    cf = SASRecModel(SASRecConfig(num_items=n, hidden_size=8, num_blocks=1, maxlen=12, dropout_rate=0.2))
    g = torch.Generator().manual_seed(seed)
    joint, text = torch.rand(n + 1, LATENT, generator=g), torch.rand(n + 1, LATENT, generator=g)
    joint[0] = text[0] = 0
    llm, tokenizer = load_llm(llm_dir)
    return ALLMRecForRecommendation.from_components(
        llm, tokenizer, cf, joint, text, dataset.item_popularity, dataset.titles, llm_name_or_path=str(llm_dir),
        dataset_name=dataset.name, allmrec_version="0.1.0",
    )


def save_checkpoint(model, out: Path) -> Path:
    from allmrec.utils.io import atomic_directory

    with atomic_directory(out, overwrite=True) as tmp:
        model.save_pretrained(tmp)
    return out


PROBES = [([1, 2, 3, 4, 5], [6, 9, 12, 15]), ([7], [8, 10, 20, 7]), ([30, 31, 32, 33, 34, 35], [36, 2, 11])]


def probe_scores(model) -> list:
    """Ranked candidates with scores for three fixed users (item ids only, so any loader can answer)."""
    return [model.recommend(h, c) for h, c in PROBES]


def write_results(path: Path, data_dir: Path, model_type: str, split: str = "test", seed: int = 0, **extras) -> Path:
    """A results JSON in the `allmrec evaluate` schema for the tiny dataset's real candidate sets (seeded per-user hits)."""
    from allmrec.data.dataset import PreparedDataset
    from allmrec.evaluation.metrics import per_user_rank_metrics
    from allmrec.evaluation.results import build_results, write_results as write

    dataset = PreparedDataset.load(data_dir)
    rows = dataset.eval_rows(split)
    ranks = np.random.default_rng(seed).integers(0, 20, size=len(rows["user_id"]))
    results = build_results(
        model=f"runs/{model_type}", model_type=model_type, dataset=dataset.name, dataset_path=str(data_dir), split=split,
        per_user=per_user_rank_metrics(ranks), scenarios=rows["scenario"],
        candidate_fingerprint=dataset.candidate_fingerprint(split), command=f"allmrec evaluate --model runs/{model_type}",
        **extras,
    )
    write(path, results)
    return path


def push(*argv: str) -> int:
    from allmrec.cli import main

    return main(["push", *argv])


@pytest.fixture(scope="module")
def allmrec_ckpt(tiny_data, tiny_llm_dir, tmp_path_factory) -> Path:
    return save_checkpoint(build_allmrec(tiny_data, tiny_llm_dir), tmp_path_factory.mktemp("ckpt") / "allmrec")


@pytest.fixture(scope="module")
def results_files(tiny_data, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("results")
    return {
        "allmrec": write_results(d / "allmrec.json", tiny_data, "allmrec", seed=1, mode="rank"),
        "tallrec": write_results(d / "tallrec.json", tiny_data, "tallrec", seed=2, mode="rank"),
        "sasrec": write_results(d / "sasrec.json", tiny_data, "sasrec", seed=3),
    }


def copy_ckpt(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------------------------------------- the fake Hub
def test_fake_hub_wire_protocol(fake_hub, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    api = HfApi()
    url = api.create_repo("ns/toy")
    assert str(url).endswith("/ns/toy")
    assert str(api.create_repo("ns/toy", exist_ok=True)).endswith("/ns/toy")  # the 409 carries the url
    folder = tmp_path / "f"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("v1")
    (folder / "sub" / "b.json").write_text("{}")
    first = api.upload_folder(folder_path=folder, repo_id="ns/toy", commit_message="v1").oid
    (folder / "a.txt").write_text("v2")
    second = api.upload_folder(folder_path=folder, repo_id="ns/toy", commit_message="v2").oid
    assert first != second and len(first) == 40
    assert Path(hf_hub_download("ns/toy", "a.txt", revision=first)).read_text() == "v1"  # a pin survives later pushes
    assert Path(hf_hub_download("ns/toy", "a.txt")).read_text() == "v2"
    snap = Path(snapshot_download("ns/toy", revision=first))
    assert (snap / "sub" / "b.json").read_text() == "{}" and (snap / "a.txt").read_text() == "v1"
    assert api.model_info("ns/toy", revision=first).sha == first
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("ns/toy", "missing.txt")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("ns/none", "a.txt")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("ns/toy", "a.txt", revision="f" * 40)
    api.create_repo("ns/secret", private=True)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("ns/secret", token=False)
    assert not fake_hub.unhandled


def test_fake_hub_validate_yaml(fake_hub):
    from huggingface_hub import ModelCard

    ModelCard("---\nlibrary_name: transformers\ntags: [a]\n---\n# ok\n").validate()
    with pytest.raises(ValueError, match="pipeline_tag"):
        ModelCard("---\npipeline_tag: recommend-me\n---\nx\n").validate()
    bad_index = "---\nmodel-index:\n- name: m\n  results:\n  - task: {type: t}\n    dataset: {name: d}\n    metrics: []\n---\n"
    assert len(validate_card_metadata(bad_index)) == 2  # dataset type missing, no metrics


# ---------------------------------------------------------------------------------------------- the card
def test_card_content_and_metadata(allmrec_ckpt, results_files, tiny_data):
    from huggingface_hub import ModelCard

    from hub.checkpoint import inspect_checkpoint
    from hub.card import load_manifest, load_results, render_card

    results = [(f"results/{k}.json", load_results(p)) for k, p in results_files.items()]
    card = render_card(inspect_checkpoint(allmrec_ckpt), "ns/allmrec-tiny", results, load_manifest(tiny_data))
    data = card.data.to_dict()
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == "text-generation"
    assert data["datasets"] == ["tiny"] and "a-llmrec" in data["tags"] and "sasrec" in data["tags"]
    assert "base_model" not in data  # a local LLM folder is not a Hub id: no false base_model link
    # model-index: this model's numbers only, overall + every scenario with users, Hit@1 equal to the results file
    own = json.loads(Path(results_files["allmrec"]).read_text())
    entries = data["model-index"][0]["results"]
    by_config = {e["dataset"].get("config"): e for e in entries}
    assert set(by_config) == {None} | {k for k, v in own["scenarios"].items() if v["n_users"]}
    hit1 = {e["dataset"].get("config"): next(m["value"] for m in e["metrics"] if m["name"].startswith("Hit@1")) for e in entries}
    assert hit1[None] == pytest.approx(own["metrics"]["hit@1"])
    assert hit1["warm"] == pytest.approx(own["scenarios"]["warm"]["metrics"]["hit@1"])
    assert all(e["dataset"]["args"]["candidate_fingerprint"] == own["candidate_fingerprint"] for e in entries)
    text = card.text
    for needle in ("A-LLMRec (rank)** (this model)", "TALLRec (rank)", "SASRec", "19 negatives", "Preprocessing options",
                   "@inproceedings{kim2024allmrec", "not included", "ALLMRecForRecommendation.from_pretrained"):
        assert needle in text, needle
    # the transformers-only recipe is offered exactly when the checkpoint carries its code
    assert ("trust_remote_code=True" in text) == bool(json.loads((allmrec_ckpt / "config.json").read_text()).get("auto_map"))
    manifest = load_manifest(tiny_data)
    assert f"| items | {manifest['counts']['items']} |" in text
    assert validate_card_metadata(str(card)) == []
    assert ModelCard(str(card)).data.to_dict() == data  # survives a YAML round trip


def test_card_of_an_index_lora_checkpoint_says_so_and_keeps_mlp_llm_a_baseline_row(allmrec_ckpt, results_files, tiny_data,
                                                                                   tmp_path):
    """The card of a checkpoint trained with index-lora must not claim a frozen LLM nor title-likelihood ranking, and an
    MLP-LLM results file (model_type allmrec, baseline mlp-llm) is a comparison row, never "this model"."""
    from hub.checkpoint import inspect_checkpoint
    from hub.card import load_manifest, load_results, render_card

    ckpt = copy_ckpt(allmrec_ckpt, tmp_path / "ckpt")
    _json_edit(ckpt / "config.json", llm_lora_rank=8, llm_lora_target_modules=["q_proj", "v_proj"], answer_format="index")
    mlp = write_results(tmp_path / "mlp.json", tiny_data, "allmrec", seed=4, mode="rank", baseline="mlp-llm")
    results = [("results/allmrec.json", load_results(results_files["allmrec"])), ("results/mlp.json", load_results(mlp)),
               ("results/tallrec.json", load_results(results_files["tallrec"]))]
    card = render_card(inspect_checkpoint(ckpt), "ns/allmrec-tiny", results, load_manifest(tiny_data))
    text = card.text
    assert "rank-8 LoRA adapters on `q_proj, v_proj`" in text and "frozen (weights not in this repository)" not in text
    assert "one-label answers" in text and "log-probability of each label" in text
    assert "| MLP-LLM (rank) | " in text and text.count("(this model)") == 1
    overall = [e for e in card.data.to_dict()["model-index"][0]["results"] if e["dataset"].get("config") is None]
    assert len(overall) == 1  # the model-index holds this model's results file only, not MLP-LLM's
    plain = render_card(inspect_checkpoint(allmrec_ckpt), "ns/allmrec-tiny", results[:1], load_manifest(tiny_data)).text
    assert "frozen (weights not in this repository)" in plain and "LoRA" not in plain.split("## How to load")[0]


def test_card_rejects_results_from_other_candidates(allmrec_ckpt, results_files, tiny_data, tmp_path):
    from hub.push import prepare_push

    other = json.loads(Path(results_files["sasrec"]).read_text())
    other["candidate_fingerprint"] = "0" * 64
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(DataError, match="other test candidates"):
        prepare_push(allmrec_ckpt, "ns/x", [tmp_path / "other.json"], data=tiny_data)
    with pytest.raises(DataError, match="lacks"):
        (tmp_path / "bad.json").write_text('{"model": "x"}')
        prepare_push(allmrec_ckpt, "ns/x", [tmp_path / "bad.json"], data=tiny_data)


# ---------------------------------------------------------------------------------------------- push + load back
def test_push_allmrec_and_load_back_pinned(fake_hub, allmrec_ckpt, results_files, tiny_data, tiny_llm_dir, tmp_path, capsys):
    from huggingface_hub import HfApi, ModelCard, hf_hub_download

    from allmrec.model import ALLMRecForRecommendation

    repo = "ns/allmrec-tiny"
    local = ALLMRecForRecommendation.from_pretrained(allmrec_ckpt, llm_name_or_path=str(tiny_llm_dir))
    expected = probe_scores(local)
    rc = push("--model", str(allmrec_ckpt), "--repo-id", repo, "--results", *map(str, results_files.values()),
              "--data", str(tiny_data), "--commit-message", "first")
    out = capsys.readouterr().out
    assert rc == 0, out
    sha = json.loads(out[: out.rindex("}") + 1])["commit"]
    files = fake_hub.files(repo, sha)
    for f in os.listdir(allmrec_ckpt):
        assert files[f] == (allmrec_ckpt / f).read_bytes(), f
    assert not any(k.startswith("llm.") for k in _safetensors_keys(hf_hub_download(repo, "model.safetensors", revision=sha)))
    assert {"README.md", "results/allmrec_tiny_test_rank.json", "results/sasrec_tiny_test.json"} <= set(files)
    card = ModelCard.load(repo)
    assert card.data.library_name == "transformers" and card.data.eval_results

    # a second push (changed projector) moves main; the first commit still loads the first weights
    changed = ALLMRecForRecommendation.from_pretrained(allmrec_ckpt, llm_name_or_path=str(tiny_llm_dir))
    with torch.no_grad():
        changed.user_projector.fc2.bias.add_(1.0)
    ckpt2 = save_checkpoint(changed, tmp_path / "ckpt2")
    assert push("--model", str(ckpt2), "--repo-id", repo, "--data", str(tiny_data)) == 0
    capsys.readouterr()
    assert fake_hub.head(repo) != sha
    assert set(fake_hub.files(repo)) >= {"README.md"} and not any(f.startswith("results/") for f in fake_hub.files(repo))
    assert HfApi().model_info(repo, revision=sha).sha == sha

    llm, tok = load_llm(tiny_llm_dir)
    pinned = ALLMRecForRecommendation.from_pretrained(repo, revision=sha, llm=llm, tokenizer=tok)
    assert probe_scores(pinned) == expected
    latest = ALLMRecForRecommendation.from_pretrained(repo, llm_name_or_path=str(tiny_llm_dir))
    assert probe_scores(latest) != expected
    assert not fake_hub.unhandled


@pytest.fixture(scope="module")
def python_without_allmrec(tmp_path_factory) -> Path:
    """A venv whose only packages are this venv's site-packages (added as a plain path, so the editable
    allmrec hook in there never runs): torch + transformers import, ``allmrec`` does not."""
    import subprocess
    import sys
    import sysconfig

    venv = tmp_path_factory.mktemp("venv_without_allmrec")
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", "--clear", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "main-venv-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_automodel_remote_code_at_pinned_revision(fake_hub, allmrec_ckpt, tiny_data, tiny_llm_dir, tmp_path,
                                                  python_without_allmrec, capsys):
    """Fresh process, no allmrec: AutoModel + trust_remote_code from the Hub at a pinned commit = allmrec's scores."""
    import subprocess

    from transformers import AutoModel

    from allmrec.model import ALLMRecForRecommendation

    config = json.loads((allmrec_ckpt / "config.json").read_text())
    assert config.get("auto_map", {}).get("AutoModel") == "modeling_allmrec.ALLMRecForRecommendation", (
        "save_pretrained must write auto_map + the code files (register_for_auto_class)")
    local = ALLMRecForRecommendation.from_pretrained(allmrec_ckpt, llm_name_or_path=str(tiny_llm_dir))
    probes = [{"history": h, "candidates": c} for h, c in PROBES]
    for p, ranking in zip(probes, probe_scores(local)):
        p["ranking"] = ranking
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps({"llm": str(tiny_llm_dir), "probes": probes}))

    assert push("--model", str(allmrec_ckpt), "--repo-id", "ns/remote", "--data", str(tiny_data)) == 0
    out = capsys.readouterr().out
    sha = json.loads(out[: out.rindex("}") + 1])["commit"]
    with torch.no_grad():
        local.user_projector.fc2.bias.add_(1.0)
    assert push("--model", str(save_checkpoint(local, tmp_path / "v2")), "--repo-id", "ns/remote", "--data", str(tiny_data)) == 0
    capsys.readouterr()
    assert fake_hub.head("ns/remote") != sha  # main moved on: only the pin gives the first weights

    # with allmrec imported, AutoModel resolves model_type "allmrec" to the package's class
    llm, tok = load_llm(tiny_llm_dir)
    auto = AutoModel.from_pretrained("ns/remote", revision=sha, llm=llm, tokenizer=tok)
    assert type(auto) is ALLMRecForRecommendation
    assert probe_scores(auto) == [p["ranking"] for p in probes]

    # without allmrec: the repository's own code, fetched at that commit
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = Path(__file__).resolve().parents[1] / "examples" / "check_remote_code.py"
    run = subprocess.run(
        [str(python_without_allmrec), str(script), "--mode", "remote", "--checkpoint", "ns/remote", "--revision", sha,
         "--expected", str(expected)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["reproduced"] and report["max_abs_score_diff"] == 0.0
    assert sha in report["model_class"] and report["cf_class"].startswith("transformers_modules.")


def test_push_tallrec_adapter_and_load_back(fake_hub, tiny_llm_dir, results_files, tiny_data, tmp_path, capsys):
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model
    from huggingface_hub import ModelCard

    base, tok = load_llm(tiny_llm_dir)
    torch.manual_seed(0)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "v_proj"], bias="none",
                      task_type=TaskType.CAUSAL_LM, init_lora_weights=False)  # non-zero B so the adapter changes outputs
    adapter = get_peft_model(base, lora).eval()
    # the layout `allmrec train tallrec` writes: adapter + tokenizer + allmrec sidecar
    adapter.save_pretrained(tmp_path / "tallrec")
    tok.save_pretrained(tmp_path / "tallrec")
    (tmp_path / "tallrec" / "allmrec_baseline.json").write_text(json.dumps(
        {"model_type": "tallrec", "llm": "smollm2-135m-instruct", "llm_name_or_path": "smollm2-135m-instruct",
         "num_items": json.loads((tiny_data / "manifest.json").read_text())["counts"]["items"], "prompt_style": "fig6",
         "dataset_name": "tiny"}))
    inputs = tok(["This user has watched \"Movie 1\" in the past."], return_tensors="pt")
    with torch.no_grad():
        expected = adapter(**inputs).logits
    rc = push("--model", str(tmp_path / "tallrec"), "--repo-id", "ns/tallrec-tiny", "--data", str(tiny_data),
              "--results", *map(str, results_files.values()))
    out = capsys.readouterr().out
    assert rc == 0, out
    sha = json.loads(out[: out.rindex("}") + 1])["commit"]
    card = ModelCard.load("ns/tallrec-tiny")
    assert card.data.library_name == "peft" and "tallrec" in card.data.tags
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"  # the asset name maps to its Hub id
    assert "Q4_1 GGUF" in card.text  # ... and the card says the weights were the dequantized GGUF
    assert {"tokenizer.json", "allmrec_baseline.json", "adapter_config.json"} <= set(fake_hub.files("ns/tallrec-tiny"))
    assert "TALLRec (rank)** (this model)" in card.text and "@inproceedings{bao2023tallrec" in card.text
    fresh, _ = load_llm(tiny_llm_dir)
    loaded = PeftModel.from_pretrained(fresh, "ns/tallrec-tiny", revision=sha).eval()
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, expected)


def test_model_push_to_hub_round_trip(fake_hub, tiny_data, tiny_llm_dir):
    """``model.push_to_hub`` (transformers' own path) uploads no LLM tensor and loads back with identical scores."""
    from huggingface_hub import HfApi

    from allmrec.model import ALLMRecForRecommendation

    model = build_allmrec(tiny_data, tiny_llm_dir, seed=3)
    expected = probe_scores(model)
    commit = model.push_to_hub("ns/pushed", commit_message="push_to_hub")
    files = set(fake_hub.files("ns/pushed"))
    assert {"config.json", "model.safetensors", "item_catalogue.json"} <= files
    assert not any(k.startswith("llm.") for k in _safetensors_keys(_download("ns/pushed", "model.safetensors")))
    sha = HfApi().model_info("ns/pushed").sha
    assert commit.oid == sha
    loaded = ALLMRecForRecommendation.from_pretrained("ns/pushed", revision=sha, llm_name_or_path=str(tiny_llm_dir))
    assert probe_scores(loaded) == expected


def test_push_to_branch_and_private(fake_hub, allmrec_ckpt, tiny_data, capsys):
    rc = push("--model", str(allmrec_ckpt), "--repo-id", "ns/branchy", "--data", str(tiny_data), "--revision", "exp-1",
              "--private")
    out = capsys.readouterr().out
    assert rc == 0, out
    repo = fake_hub.repo("ns/branchy")
    assert repo.private and "config.json" in fake_hub.files("ns/branchy", "exp-1")
    assert "config.json" not in fake_hub.files("ns/branchy", "main")


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "model.safetensors").unlink(), "model.safetensors is missing"),
        (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:200]), "is corrupt"),
        (lambda d: (d / "config.json").write_text("{not json"), "config.json is corrupt"),
        (lambda d: (d / "item_catalogue.json").unlink(), "item_catalogue.json is missing"),
        (lambda d: (d / "item_catalogue.json").write_text('{"titles": ["", "a"]}'), "must hold"),
        (lambda d: _json_edit(d / "config.json", latent_dim=99), "implies"),
        (lambda d: _json_edit(d / "config.json", model_type="sasrec"), "model_type 'sasrec'"),
        (lambda d: (d / "config.json").unlink(), "neither config.json"),
        (lambda d: _add_llm_tensor(d / "model.safetensors"), "frozen-LLM tensors"),
        (lambda d: shutil.rmtree(d), "is not a directory"),
    ],
    ids=["missing-weights", "truncated-weights", "corrupt-config", "no-catalogue", "short-catalogue", "config-mismatch",
         "unknown-type", "no-config", "llm-tensors", "no-dir"],
)
def test_bad_checkpoint_is_one_line_error(allmrec_ckpt, tiny_data, tmp_path, capsys, damage, message):
    ckpt = copy_ckpt(allmrec_ckpt, tmp_path / "ckpt")
    damage(ckpt)
    rc = push("--model", str(ckpt), "--repo-id", "ns/x", "--data", str(tiny_data), "--dry-run")
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_push_without_token(fake_hub, allmrec_ckpt, tiny_data, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN")
    assert push("--model", str(allmrec_ckpt), "--repo-id", "ns/x", "--data", str(tiny_data)) == 2
    err = capsys.readouterr().err
    assert "no Hugging Face token" in err and "HF_TOKEN" in err and err.count("\n") == 1
    assert fake_hub.requests == [] or all("/api/repos/create" not in p for _, p, _ in fake_hub.requests)


def test_push_with_rejected_token(fake_hub, allmrec_ckpt, tiny_data, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    assert push("--model", str(allmrec_ckpt), "--repo-id", "ns/x", "--data", str(tiny_data)) == 2
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "token was rejected" in err and err.count("\n") == 1
    assert ("model", "ns/x") not in fake_hub.repos


def test_push_offline_is_refused(fake_hub, allmrec_ckpt, tiny_data, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert push("--model", str(allmrec_ckpt), "--repo-id", "ns/x", "--data", str(tiny_data)) == 2
    assert "HF_HUB_OFFLINE=0 allmrec push" in capsys.readouterr().err and fake_hub.repos == {}


def test_bad_repo_id_and_wrong_dataset(allmrec_ckpt, tmp_path, tiny_data, capsys):
    assert push("--model", str(allmrec_ckpt), "--repo-id", "no-namespace", "--dry-run") == 2
    assert "NAMESPACE/NAME" in capsys.readouterr().err
    manifest = json.loads((tiny_data / "manifest.json").read_text())
    manifest["counts"]["items"] += 1
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_text(json.dumps(manifest))
    assert push("--model", str(allmrec_ckpt), "--repo-id", "ns/x", "--data", str(tmp_path / "data"), "--dry-run") == 2
    assert "pass the --data it was trained on" in capsys.readouterr().err


def test_mismatched_llm_from_hub_is_clear(fake_hub, allmrec_ckpt, tiny_data, capsys):
    from transformers import LlamaConfig, LlamaForCausalLM

    from allmrec.model import ALLMRecForRecommendation

    assert push("--model", str(allmrec_ckpt), "--repo-id", "ns/m", "--data", str(tiny_data)) == 0
    capsys.readouterr()
    other = LlamaForCausalLM(LlamaConfig(vocab_size=49152, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(_tokenizer_dir(allmrec_ckpt))
    with pytest.raises(CheckpointError, match="hidden size mismatch"):
        ALLMRecForRecommendation.from_pretrained("ns/m", llm=other, tokenizer=tok)


def test_interrupted_save_leaves_nothing_pushable(tiny_data, tiny_llm_dir, tmp_path, capsys):
    from allmrec.utils.io import atomic_directory

    model = build_allmrec(tiny_data, tiny_llm_dir)
    out = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(out) as tmp:
            model.save_pretrained(tmp)
            raise KeyboardInterrupt  # Ctrl-C after the weights, before the directory is moved into place
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert push("--model", str(out), "--repo-id", "ns/x", "--dry-run") == 2
    assert "is not a directory" in capsys.readouterr().err


def test_dry_run_writes_card_without_network(allmrec_ckpt, results_files, tiny_data, tmp_path, capsys):
    from huggingface_hub import ModelCard, constants

    card_path = tmp_path / "card.md"
    rc = push("--model", str(allmrec_ckpt), "--repo-id", "ns/x", "--results", str(results_files["allmrec"]),
              "--card-out", str(card_path), "--dry-run")  # --data comes from the results file's dataset_path
    assert rc == 0 and constants.HF_HUB_OFFLINE  # offline test session: nothing could have been contacted
    assert "would push" in capsys.readouterr().out
    card = ModelCard.load(card_path)
    assert card.data.eval_results and "Preprocessing options" in card.text


EXAMPLE_CARDS = sorted((Path(__file__).resolve().parents[1] / "examples" / "model_cards").glob("*.md"))


@pytest.mark.parametrize(
    "card_path",
    EXAMPLE_CARDS or [pytest.param(None, marks=pytest.mark.skip(reason="no rendered example card committed yet"))],
    ids=[p.stem for p in EXAMPLE_CARDS] or ["none"],
)
def test_example_cards_validate(fake_hub, card_path):
    """The committed example cards (examples/model_cards/) pass the offline checks and the Hub's validate-yaml."""
    from huggingface_hub import ModelCard

    from hub.card import check_card_metadata

    card = ModelCard.load(card_path)
    check_card_metadata(card)
    card.validate()  # POST /api/validate-yaml on the fake Hub
    data = card.data.to_dict()
    assert data.get("model-index") and data.get("base_model") and data.get("datasets")
    assert "## Evaluation" in card.text and "@inproceedings" in card.text


# ---------------------------------------------------------------------------------------------- helpers
def _json_edit(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _add_llm_tensor(path: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    state["llm.model.embed_tokens.weight"] = torch.zeros(4, 4)
    save_file(state, str(path), metadata={"format": "pt"})


def _safetensors_keys(path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return list(f.keys())


def _download(repo: str, filename: str, revision: str | None = None) -> str:
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo, filename, revision=revision)


def _tokenizer_dir(ckpt: Path) -> str:
    return json.loads((ckpt / "config.json").read_text())["llm_name_or_path"]


def test_lora_adapter_tensors_are_part_of_an_allmrec_checkpoint(allmrec_ckpt, tiny_data, tmp_path, capsys):
    """llm_lora_rank > 0 checkpoints carry the LoRA adapters inside the LLM (never the base LLM): they publish; the same
    tensors with llm_lora_rank 0 mean mixed-up files and are refused."""
    from safetensors.torch import load_file, save_file

    ckpt = copy_ckpt(allmrec_ckpt, tmp_path / "ckpt")
    state = load_file(str(ckpt / "model.safetensors"))
    state["llm.model.layers.0.self_attn.q_proj.lora_A.default.weight"] = torch.zeros(2, 4)
    save_file(state, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    assert push("--model", str(ckpt), "--repo-id", "ns/x", "--data", str(tiny_data), "--dry-run") == 2
    assert "llm_lora_rank 0" in capsys.readouterr().err
    _json_edit(ckpt / "config.json", llm_lora_rank=2)
    assert push("--model", str(ckpt), "--repo-id", "ns/x", "--data", str(tiny_data), "--dry-run") == 0
