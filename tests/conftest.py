"""Shared fixtures: offline environment, a tiny synthetic dataset and the real ml-100k, prepared once."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def write_tiny_recbole(folder: Path, n_users: int = 60, n_items: int = 40, n_cold_users: int = 5, seed: int = 0) -> Path:
    """A learnable synthetic dataset: each user walks a ring of items (next = current + 1 mod N),
    so sequential models can fit it; plus a few users with exactly 3 interactions (cold users)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    t = 1_000_000
    for u in range(1, n_users + n_cold_users + 1):
        length = 3 if u > n_users else int(rng.integers(8, 16))
        start = int(rng.integers(0, n_items))
        for j in range(length):
            item = (start + j) % n_items + 1
            lines.append(f"u{u}\ti{item}\t{int(rng.integers(1, 6))}\t{t + 10 * j}")
        t += 1000
    (folder / "tiny.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    genres = ["Comedy", "Drama", "Action", "Horror"]
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    for i in range(1, n_items + 1):
        items.append(f"i{i}\tMovie {i}\t{1980 + i}\t{genres[i % 4]} {genres[(i + 1) % 4]}")
    (folder / "tiny.item").write_text("\n".join(items) + "\n", encoding="utf-8")
    return folder / "tiny.inter"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Path to a prepared tiny dataset (~60 users, 40 items, 5 cold users, 20 candidates)."""
    from allmrec.data.prepare import PrepareOptions, prepare

    root = tmp_path_factory.mktemp("tiny")
    src = write_tiny_recbole(root / "raw")
    out = root / "prepared"
    prepare(PrepareOptions(source=str(src), name="tiny", domain="movie", few_shot=(8, 16)), out, progress=False)
    return out


@pytest.fixture(scope="session")
def ml100k_data(tmp_path_factory) -> Path:
    """Path to the real MovieLens-100K, prepared with the default (paper) options."""
    from allmrec.data.prepare import PrepareOptions, prepare

    out = tmp_path_factory.mktemp("ml100k") / "prepared"
    prepare(PrepareOptions(source="ml-100k"), out, progress=False)
    return out


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 5:  # no test selected: CI must not mistake this for success
        print("\nERROR: pytest selected no tests (exit 5) - check the test paths and markers", flush=True)


STAGE2_LATENT = 16
TINY_LAYERS = 3  # layers of the tiny SBERT


def _st_modules():
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers < 5
        from sentence_transformers.models import Pooling, Transformer
    return Transformer, Pooling


@pytest.fixture(scope="session")
def tiny_sbert_path(tmp_path_factory) -> str:
    """A sentence-transformers folder: random 3-layer BERT (hidden 32) + mean pooling, MiniLM tokenizer."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from allmrec.assets import resolve_sbert

    root = tmp_path_factory.mktemp("tiny_sbert")
    tok = AutoTokenizer.from_pretrained(resolve_sbert("all-minilm-l6-v2"))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=TINY_LAYERS, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(root / "hf")
    tok.save_pretrained(root / "hf")
    Transformer, Pooling = _st_modules()
    st = SentenceTransformer(modules=[Transformer(str(root / "hf"), max_seq_length=32), Pooling(32, "mean")], device="cpu")
    st.save(str(root / "st"))
    return str(root / "st")




@pytest.fixture(scope="session")
def stage2_inputs(tiny_data, tmp_path_factory):
    """(data, stage1 dir, llm dir) for the tiny dataset, written the way the earlier stages write them: a
    SASRec checkpoint, a stage-1 directory (config.json + item_embeddings.safetensors) and an LLM folder
    (a tiny random Llama + the SmolLM2 tokenizer)."""
    import json

    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from allmrec.assets import resolve_llm
    from allmrec.cf import SASRecConfig, SASRecModel
    from allmrec.data.dataset import PreparedDataset

    root = tmp_path_factory.mktemp("stage2_inputs")
    ds = PreparedDataset.load(tiny_data)
    torch.manual_seed(0)
    cf = SASRecModel(SASRecConfig(num_items=ds.num_items, hidden_size=8, num_blocks=1, maxlen=12))
    cf.save_pretrained(root / "cf")
    s1 = root / "stage1"
    s1.mkdir()
    (s1 / "config.json").write_text(json.dumps({"model_type": "allmrec_stage1", "cf_model_path": str(root / "cf"), "latent_dim": STAGE2_LATENT}))
    g = torch.Generator().manual_seed(0)
    joint, text = torch.rand(ds.num_items + 1, STAGE2_LATENT, generator=g), torch.rand(ds.num_items + 1, STAGE2_LATENT, generator=g)
    joint[0] = text[0] = 0
    save_file({"joint": joint, "text": text}, str(s1 / "item_embeddings.safetensors"))
    llm = LlamaForCausalLM(LlamaConfig(
        vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True, eos_token_id=2, pad_token_id=2,
    ))
    llm.save_pretrained(root / "llm")
    AutoTokenizer.from_pretrained(resolve_llm("smollm2-135m-instruct")).save_pretrained(root / "llm")
    return tiny_data, s1, root / "llm"
