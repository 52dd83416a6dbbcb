"""Hub-native loading: the base LLM named by its canonical Hub id (offline assets resolve to their local copy), the
``next-item-recommendation`` pipeline (registry, remote code, text-only models), a checkpoint that loads from the
(loopback) Hub in a process without allmrec with no extra argument."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from fake_hub import _fake_hub_modules_cache, _fake_hub_server, fake_hub  # noqa: F401 (fixtures)
from test_hub import PROBES, build_allmrec, load_llm, probe_scores, python_without_allmrec, save_checkpoint, tiny_llm_dir  # noqa: F401

from allmrec.errors import CheckpointError


# ---------------------------------------------------------------------------------------------- base LLM identity
def test_assets_have_canonical_hub_ids_and_resolve_offline(monkeypatch):
    from allmrec import assets

    assert assets.canonical_id("smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert assets.canonical_id("all-minilm-l6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert assets.canonical_id("facebook/opt-6.7b") == "facebook/opt-6.7b"  # not an asset: unchanged
    assert assets.asset_name("huggingfacetb/smollm2-135m-instruct") == "smollm2-135m-instruct"
    local = assets.resolve_llm("smollm2-135m-instruct")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert assets.resolve_llm("HuggingFaceTB/SmolLM2-135M-Instruct") == local  # offline: the installed copy
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert assets.resolve_llm("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    record = assets.asset_provenance("smollm2-135m-instruct")
    assert record["asset"] == "smollm2-135m-instruct" and record["canonical_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert record["file"].endswith(".gguf") and len(record["sha256"]) == 64 and "Q4_1" in record["weights"]
    assert assets.asset_provenance("facebook/opt-6.7b") is None


def test_stage2_records_the_canonical_id_and_the_asset(stage2_inputs, tmp_path, monkeypatch):
    """Trained on an asset name, the checkpoint names the Hub repository and what exactly was used."""
    from allmrec.model import training

    from allmrec.model import modeling_allmrec

    data, stage1, llm_dir = stage2_inputs
    seen = {}

    def fake_load(name, **kw):  # the tiny LLM stands in for the asset's weights
        seen["name"] = name
        return load_llm(llm_dir)

    monkeypatch.setattr(modeling_allmrec, "load_llm", fake_load)
    args = training.Stage2TrainingArguments(data=str(data), stage1=str(stage1), out=str(tmp_path / "s2"),
                                            llm="smollm2-135m-instruct", valid_users=0)
    args.validate()
    from allmrec.data.dataset import PreparedDataset

    model = training.build_model(args, PreparedDataset.load(data), "cpu")
    assert model.config.llm_name_or_path == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert model.config.llm_source["asset"] == "smollm2-135m-instruct" and len(model.config.llm_source["sha256"]) == 64
    assert seen["name"] == "smollm2-135m-instruct"  # training itself ran on the asset


def test_unloadable_base_llm_error_names_it_and_the_way_out(tiny_data, tiny_llm_dir, tmp_path):
    from allmrec.model import ALLMRecForRecommendation

    model = build_allmrec(tiny_data, tiny_llm_dir)
    model.config.llm_name_or_path = "nobody/no-such-llm"
    ckpt = save_checkpoint(model, tmp_path / "ckpt")
    with pytest.raises(CheckpointError) as e:
        ALLMRecForRecommendation.from_pretrained(ckpt)
    msg = str(e.value)
    assert "nobody/no-such-llm" in msg and "llm_name_or_path='/path/to/no-such-llm'" in msg and "\n" not in msg


# ---------------------------------------------------------------------------------------------- pipeline
def test_pipeline_task_is_registered_and_ranks_like_recommend(tiny_data, tiny_llm_dir, tmp_path):
    from transformers import pipeline

    from allmrec.model import ALLMRecForRecommendation

    model = build_allmrec(tiny_data, tiny_llm_dir, seed=5)
    ckpt = save_checkpoint(model, tmp_path / "ckpt")
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["custom_pipelines"]["next-item-recommendation"]["impl"] == "pipeline_allmrec.NextItemRecommendationPipeline"
    assert (ckpt / "pipeline_allmrec.py").is_file()
    loaded = ALLMRecForRecommendation.from_pretrained(ckpt, llm_name_or_path=str(tiny_llm_dir))
    rec = pipeline("next-item-recommendation", model=loaded, tokenizer=loaded.tokenizer)
    (h, c), (h2, c2) = PROBES[0], PROBES[1]
    expected = loaded.recommend(h, c)
    out = rec({"history": h, "candidates": c})
    assert [r["item_id"] for r in out] == [r["item_id"] for r in expected]
    assert [r["rank"] for r in out] == list(range(1, len(c) + 1))
    assert [round(r["score"], 5) for r in out] == [round(r["score"], 5) for r in expected]
    titles = loaded.item_titles
    by_title = rec({"history": [titles[i] for i in h], "candidates": [titles[i] for i in c]}, top_k=2)
    assert [r["item_id"] for r in by_title] == [r["item_id"] for r in expected[:2]]
    batched = rec([{"history": h, "candidates": c}, {"history": h2, "candidates": c2}])
    assert len(batched) == 2 and [r["item_id"] for r in batched[1]] == [r["item_id"] for r in loaded.recommend(h2, c2)]
    gen = rec({"history": h, "candidates": c}, mode="generate")
    assert set(gen) == {"answer", "item_id", "title", "valid"} and gen["valid"] == (gen["item_id"] in c)
    with pytest.raises(ValueError, match="history is empty"):
        rec({"history": [], "candidates": c})
    with pytest.raises(ValueError, match="a dict"):
        rec("Star Wars")
    with pytest.raises(ValueError, match="mode="):
        rec({"history": h, "candidates": c}, mode="sample")


def test_pipeline_serves_text_only_models_with_plain_titles(tiny_llm_dir):
    from allmrec.baselines.text_model import build_llm_only
    from allmrec.pipeline import recommendation_pipeline

    llm, tok = load_llm(tiny_llm_dir)
    model = build_llm_only(str(tiny_llm_dir), num_items=1, llm=llm, tokenizer=tok, device="cpu")
    rec = recommendation_pipeline(model)
    cands = ["Heat (1995)", "Fargo (1996)", "Babe (1995)"]
    out = rec({"history": ["Star Wars (1977)", "Toy Story (1995)"], "candidates": cands})
    assert sorted(r["title"] for r in out) == sorted(cands) and all(r["item_id"] is None for r in out)
    assert out == sorted(out, key=lambda r: -r["score"])
    with pytest.raises(ValueError, match="needs a catalogue"):
        rec({"history": [1], "candidates": cands})


# ---------------------------------------------------------------------------------------------- from the Hub, no allmrec
REMOTE_SCRIPT = r"""
import json, sys
try:
    import allmrec
except ImportError:
    pass
else:
    sys.exit("allmrec is importable")
from transformers import AutoModel, pipeline
repo, probes = sys.argv[1], json.loads(sys.argv[2])
model = AutoModel.from_pretrained(repo, trust_remote_code=True)          # no extra argument
assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
rec = pipeline(model=repo, trust_remote_code=True)                         # the task comes from config.json
print(json.dumps({"automodel": [model.recommend(h, c) for h, c in probes],
                  "pipeline": [rec({"history": h, "candidates": c}) for h, c in probes],
                  "task": rec.task, "base": model.config.llm_name_or_path}))
"""


def test_downloaded_checkpoint_loads_with_no_argument_without_allmrec(fake_hub, tiny_data, tiny_llm_dir, tmp_path,
                                                                       python_without_allmrec):
    """The base LLM is named by its Hub id: a fresh process without allmrec gets it (and the code, and the
    pipeline task) from the Hub; the recorded offline asset is only used where allmrec is installed."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo("base-org/tiny-base")
    api.upload_folder(folder_path=str(tiny_llm_dir), repo_id="base-org/tiny-base")
    model = build_allmrec(tiny_data, tiny_llm_dir, seed=6)
    model.config.llm_name_or_path = "base-org/tiny-base"
    model.config.llm_source = {"asset": "smollm2-135m-instruct", "weights": "stands for a local copy"}
    expected = probe_scores(model)
    api.create_repo("ns/self-contained")
    api.upload_folder(folder_path=str(save_checkpoint(model, tmp_path / "ckpt")), repo_id="ns/self-contained")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([str(python_without_allmrec), "-c", REMOTE_SCRIPT, "ns/self-contained", json.dumps(PROBES)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["task"] == "next-item-recommendation" and got["base"] == "base-org/tiny-base"
    assert got["automodel"] == expected
    assert [[r["item_id"] for r in p] for p in got["pipeline"]] == [[r["item_id"] for r in p] for p in expected]
    # without allmrec the recorded asset cannot be had: the Hub weights are used, and the user is told
    assert "base LLM loaded from base-org/tiny-base, not the smollm2-135m-instruct asset" in run.stderr


def test_space_published_next_to_the_model_runs_without_allmrec(fake_hub, tiny_data, tiny_llm_dir, tmp_path,
                                                                 python_without_allmrec):
    """`allmrec push --space`: the Space repo holds the app, its requirements and a Space card naming the model;
    downloaded into a process without allmrec, the app loads the pinned model from the Hub and serves the page."""
    import socket
    import time
    import urllib.request

    from huggingface_hub import HfApi, snapshot_download

    from allmrec.cli import main

    api = HfApi()
    api.create_repo("base-org/tiny-base")
    api.upload_folder(folder_path=str(tiny_llm_dir), repo_id="base-org/tiny-base")
    model = build_allmrec(tiny_data, tiny_llm_dir, seed=8)
    model.config.llm_name_or_path = "base-org/tiny-base"
    ckpt = save_checkpoint(model, tmp_path / "ckpt")
    assert main(["push", "--model", str(ckpt), "--repo-id", "ns/rec", "--data", str(tiny_data), "--space"]) == 0
    files = fake_hub.files("ns/rec-demo", repo_type="space")
    assert {"app.py", "requirements.txt", "README.md", "space_config.json"} <= set(files)
    card = files["README.md"].decode()
    assert "sdk: gradio" in card and "app_file: app.py" in card and "- ns/rec" in card
    config = json.loads(files["space_config.json"])
    assert config["model"] == "ns/rec" and config["revision"] == fake_hub.head("ns/rec")

    space = Path(snapshot_download("ns/rec-demo", repo_type="space", local_dir=str(tmp_path / "space")))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([str(python_without_allmrec), "app.py", "--port", str(port)], cwd=space, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, page = time.monotonic() + 240, None
        while time.monotonic() < deadline and page is None and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    page = r.read().decode("utf-8", "replace")
            except OSError:
                time.sleep(0.5)
        assert page is not None, proc.stdout.read()[-3000:] if proc.poll() is not None else "no answer"
        assert "A-LLMRec" in page
    finally:
        proc.terminate()
        proc.wait(timeout=20)
