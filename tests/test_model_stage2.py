"""A-LLMRec stage-2 model on a tiny random Llama (SmolLM2 tokenizer) and a tiny SASRec.

Covers: splicing by mask, count checks, gradients only in F_U/F_I, checkpoints without LLM tensors,
save → load reproduces scores, rank mode == unbatched reference, batched == single generation,
mismatched LLM / tokenizer / files, and the real SmolLM2 (slow).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from allmrec.errors import CheckpointError
from allmrec.model.configuration_allmrec import ALLMRecConfig, ALLMRecConfigError
from allmrec.model.modeling_allmrec import ALLMRecForRecommendation, left_pad_histories
from allmrec.model.processing_allmrec import IGNORE_INDEX, encode_prompts, encode_target

NUM_ITEMS = 30
LATENT = 16
TITLES = [""] + [f"Movie {i} ({1970 + i})" for i in range(1, NUM_ITEMS + 1)]


@pytest.fixture(scope="session")
def smol_tokenizer_path():
    from allmrec.assets import resolve_llm

    return resolve_llm("smollm2-135m-instruct")


@pytest.fixture
def tokenizer(smol_tokenizer_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smol_tokenizer_path)


def tiny_llm(hidden: int = 32, vocab: int = 49152, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        eos_token_id=2, pad_token_id=2, bos_token_id=1,
    )
    return LlamaForCausalLM(cfg).eval()


def tiny_cf(seed: int = 0):
    from allmrec.cf import SASRecConfig, SASRecModel

    torch.manual_seed(seed)
    return SASRecModel(SASRecConfig(num_items=NUM_ITEMS, hidden_size=8, num_blocks=1, maxlen=12, dropout_rate=0.5))


def tiny_model(tokenizer, llm=None, **config):
    g = torch.Generator().manual_seed(1)
    joint = torch.rand(NUM_ITEMS + 1, LATENT, generator=g)
    text = torch.rand(NUM_ITEMS + 1, LATENT, generator=g)
    joint[0] = text[0] = 0
    counts = torch.arange(NUM_ITEMS + 1) % 3  # every third item never seen in training
    return ALLMRecForRecommendation.from_components(
        llm if llm is not None else tiny_llm(), tokenizer, tiny_cf(), joint, text, counts, TITLES,
        llm_name_or_path="tiny-llama", **config,
    )


@pytest.fixture
def model(tokenizer):
    return tiny_model(tokenizer)


# two users with different history lengths, so batches are padded
HISTORIES = [[1, 2, 3, 4, 5], [7]]
CANDIDATES = [[6, 9, 12, 15], [8, 10, 20, 7]]
TARGETS = [9, 20]


def prompts(model, with_targets=False):
    b = model.prompt_builder()
    return [b.build(h, c, TITLES, target_id=t if with_targets else None) for h, c, t in zip(HISTORIES, CANDIDATES, TARGETS)]


def cf_inputs(model):
    return left_pad_histories(HISTORIES, model.config.cf_max_seq_len)


def continuations(model):
    b = model.prompt_builder()
    return [[encode_target(model.tokenizer, b.target_text(TITLES[c])) for c in row] for row in CANDIDATES]


def rank(model, **kw):
    batch = encode_prompts(model.tokenizer, prompts(model), padding_side="left")
    return model.score_candidates(batch["input_ids"], batch["attention_mask"], continuations(model),
                                  item_ids=batch["item_ids"], cf_input_ids=cf_inputs(model), **kw)


# ------------------------------------------------------------------------------------------- splicing
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_splicing_puts_each_vector_exactly_at_its_placeholder(model, padding_side):
    batch = encode_prompts(model.tokenizer, prompts(model), padding_side=padding_side)
    ids = batch["input_ids"]
    with torch.no_grad():
        embeds = model.embed_prompt(ids, batch["item_ids"], cf_input_ids=cf_inputs(model))
        x_u = model.user_representation(cf_inputs(model))
        o_u = model.user_projector(x_u)
        table = model.llm.get_input_embeddings().weight
    for r, (hist, cands) in enumerate(zip(HISTORIES, CANDIDATES)):
        user_pos = (ids[r] == model.user_token_id).nonzero().flatten().tolist()
        item_pos = ((ids[r] == model.history_token_id) | (ids[r] == model.candidate_token_id)).nonzero().flatten().tolist()
        assert len(user_pos) == 1 and len(item_pos) == len(hist) + len(cands)
        torch.testing.assert_close(embeds[r, user_pos[0]], o_u[r], rtol=0, atol=0)
        for pos, item in zip(item_pos, hist + cands):
            expected = model.item_projector(model.item_joint[item])
            torch.testing.assert_close(embeds[r, pos], expected, rtol=1e-6, atol=1e-6)
        # every other position is the LLM's own token embedding
        others = [p for p in range(ids.shape[1]) if p not in user_pos + item_pos]
        torch.testing.assert_close(embeds[r, others], table[ids[r, others]], rtol=0, atol=0)
    # history placeholders sit right after a quoted title
    text = model.tokenizer.decode(ids[0][batch["attention_mask"][0].bool()])
    assert '(1971)"[HistoryEmb]' in text


def test_placeholder_count_mismatch_raises(model):
    batch = encode_prompts(model.tokenizer, prompts(model), padding_side="left")
    short = batch["item_ids"].clone()
    short[0, (short[0] >= 0).nonzero().max()] = -1  # one vector fewer than placeholders in row 0
    with pytest.raises(ValueError, match="count mismatch"):
        model.embed_prompt(batch["input_ids"], short, cf_input_ids=cf_inputs(model))
    extra = torch.cat([batch["item_ids"], torch.full((2, 1), 3)], dim=1)
    with pytest.raises(ValueError, match="count mismatch"):
        model.embed_prompt(batch["input_ids"], extra, cf_input_ids=cf_inputs(model))
    with pytest.raises(ValueError, match="cf_input_ids"):
        model.embed_prompt(batch["input_ids"], batch["item_ids"])  # user token but no user
    two_users = batch["input_ids"].clone()
    two_users[0, -1] = model.user_token_id
    with pytest.raises(ValueError, match="exactly one user token"):
        model.embed_prompt(two_users, batch["item_ids"], cf_input_ids=cf_inputs(model))


def test_placeholders_never_reach_the_llm_vocabulary(model):
    # added tokens get ids >= the LLM's 49152 rows; the embedding table was not resized
    assert min(model.user_token_id, model.history_token_id, model.candidate_token_id) >= 49152
    assert model.llm.get_input_embeddings().weight.shape[0] == 49152


def test_existing_tokens_handling_needs_single_tokens(tokenizer):
    with pytest.raises(CheckpointError, match="existing_tokens"):
        tiny_model(tokenizer, placeholder_handling="existing_tokens")
    # SmolLM2's own special tokens are single tokens: usable as reserved placeholders
    m = tiny_model(tokenizer, placeholder_handling="existing_tokens", user_token="<repo_name>",
                   history_token="<file_sep>", candidate_token="<filename>")
    assert m.user_token_id < 49152
    assert rank(m).shape == (2, 4)


# ------------------------------------------------------------------------------------------- training
def test_gradients_reach_only_the_projectors(model):
    model.train()
    batch = encode_prompts(model.tokenizer, prompts(model, with_targets=True), with_targets=True, padding_side="right")
    loss = model(**batch, cf_input_ids=cf_inputs(model)).loss
    loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("user_projector.", "item_projector.")) for n in trainable)
    for name, p in model.named_parameters():
        if name.startswith(("user_projector.", "item_projector.")):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None and not p.requires_grad, name
    assert model.llm.training is False and model.cf_model.training is False


def test_loss_is_on_target_tokens_and_eos_only(model):
    batch = encode_prompts(model.tokenizer, prompts(model, with_targets=True), with_targets=True, padding_side="right")
    labels = batch["labels"]
    for r, t in enumerate(TARGETS):
        kept = labels[r][labels[r] != IGNORE_INDEX].tolist()
        assert kept == encode_target(model.tokenizer, model.prompt_builder().target_text(TITLES[t]))
        assert kept[-1] == model.tokenizer.eos_token_id
    with torch.no_grad():
        out = model(**batch, cf_input_ids=cf_inputs(model))
        # reference: the LLM's own causal-LM loss over the full sequence
        embeds = model.embed_prompt(batch["input_ids"], batch["item_ids"], cf_input_ids=cf_inputs(model))
        reference = model.llm(inputs_embeds=embeds, attention_mask=batch["attention_mask"], labels=labels).loss
        left = encode_prompts(model.tokenizer, prompts(model, with_targets=True), with_targets=True, padding_side="left")
        left_loss = model(**left, cf_input_ids=cf_inputs(model)).loss
    # only the positions from the first target's predictor on get logits (not the prompt's LM head)
    assert out.logits.shape[1] < batch["input_ids"].shape[1] // 2
    torch.testing.assert_close(out.loss, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(left_loss, reference, rtol=1e-5, atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients(tokenizer):
    grads = []
    for gc in (False, True):
        m = tiny_model(tokenizer)
        calls = []
        if gc:
            m.enable_llm_gradient_checkpointing()
            for layer in m.llm.model.layers:  # count the recomputations actually set up
                inner = layer._gradient_checkpointing_func
                layer._gradient_checkpointing_func = lambda *a, _f=inner, **k: calls.append(1) or _f(*a, **k)
        m.train()
        batch = encode_prompts(m.tokenizer, prompts(m, with_targets=True), with_targets=True, padding_side="right")
        m(**batch, cf_input_ids=cf_inputs(m)).loss.backward()
        grads.append(m.item_projector.fc1.weight.grad.clone())
        assert m.llm.training is False and m.llm.model.layers[0].self_attn.training is False
        assert len(calls) == (len(m.llm.model.layers) if gc else 0)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_constructing_the_model_leaves_the_llm_weights_untouched(tokenizer):
    llm = tiny_llm(seed=3)
    before = copy.deepcopy(llm.state_dict())
    tiny_model(tokenizer, llm=llm)
    for k, v in llm.state_dict().items():
        assert torch.equal(v, before[k]), k


# ------------------------------------------------------------------------------------------- scoring
def _reference_scores(model, normalization):
    """One full forward per (user, candidate), no cache, no padding."""
    out = torch.zeros(len(HISTORIES), len(CANDIDATES[0]))
    table = model.llm.get_input_embeddings()
    for r, p in enumerate(prompts(model)):
        single = encode_prompts(model.tokenizer, [p], padding_side="left")
        with torch.no_grad():
            prompt_emb = model.embed_prompt(single["input_ids"], single["item_ids"],
                                            cf_input_ids=left_pad_histories([HISTORIES[r]], model.config.cf_max_seq_len))
            for c, cont in enumerate(continuations(model)[r]):
                cont_t = torch.tensor([cont])
                emb = torch.cat([prompt_emb, table(cont_t)], dim=1)
                logits = model.llm(inputs_embeds=emb).logits[0]
                n_prompt = prompt_emb.shape[1]
                logp = torch.log_softmax(logits[n_prompt - 1:-1].float(), -1).gather(-1, cont_t[0, :, None]).squeeze(-1)
                out[r, c] = logp.sum() if normalization == "sum" else logp.mean()
    return out


@pytest.mark.parametrize("normalization", ["sum", "mean"])
def test_rank_mode_batched_equals_unbatched_reference(model, normalization):
    batched = rank(model, normalization=normalization)
    torch.testing.assert_close(batched, _reference_scores(model, normalization), rtol=1e-4, atol=1e-4)


def test_generation_batched_equals_one_by_one(model):
    ps = prompts(model)
    batch = encode_prompts(model.tokenizer, ps, padding_side="left")
    together = model.generate_answers(batch["input_ids"], batch["attention_mask"], batch["item_ids"],
                                      cf_input_ids=cf_inputs(model), max_new_tokens=6)
    assert together.shape[0] == 2 and together.shape[1] <= 6  # only new tokens come back
    for r, p in enumerate(ps):
        one = encode_prompts(model.tokenizer, [p], padding_side="left")
        alone = model.generate_answers(one["input_ids"], one["attention_mask"], one["item_ids"],
                                       cf_input_ids=left_pad_histories([HISTORIES[r]], 12), max_new_tokens=6)
        n = alone.shape[1]
        assert together[r, :n].tolist() == alone[0].tolist()


def test_stop_at_answer_ends_rows_at_the_closing_quote(model):
    from allmrec.model.matching import parse_answer

    # make the tiny LLM answer with quotes: bias its output towards the ' "' token and a closing ')"'
    quote_open = model.tokenizer(' "', add_special_tokens=False)["input_ids"][0]
    quote_close = model.tokenizer(')"', add_special_tokens=False)["input_ids"][0]
    word = model.tokenizer(" Heat", add_special_tokens=False)["input_ids"][0]
    with torch.no_grad():
        bias = torch.zeros(model.llm.config.vocab_size)
        bias[[quote_open, word, quote_close]] = torch.tensor([30.0, 20.0, 10.0])
        model.llm.lm_head = torch.nn.Linear(32, bias.numel(), bias=True)
        model.llm.lm_head.weight.zero_()
        model.llm.lm_head.bias.copy_(bias)
    batch = encode_prompts(model.tokenizer, prompts(model), padding_side="left")
    full = model.generate_answers(batch["input_ids"], batch["attention_mask"], batch["item_ids"],
                                  cf_input_ids=cf_inputs(model), max_new_tokens=8, stop_at_answer=False)
    short = model.generate_answers(batch["input_ids"], batch["attention_mask"], batch["item_ids"],
                                   cf_input_ids=cf_inputs(model), max_new_tokens=8, stop_at_answer=True)
    assert full.shape[1] == 8 and short.shape[1] < 8
    for f, s_ in zip(model.tokenizer.batch_decode(full, skip_special_tokens=True),
                     model.tokenizer.batch_decode(short, skip_special_tokens=True)):
        assert s_.count('"') == 2 and f.startswith(s_) and parse_answer(f) == parse_answer(s_)


def test_generation_and_ranking_refuse_right_padding(model):
    batch = encode_prompts(model.tokenizer, prompts(model), padding_side="right")
    with pytest.raises(ValueError, match="left-padded"):
        model.generate_answers(batch["input_ids"], batch["attention_mask"], batch["item_ids"], cf_input_ids=cf_inputs(model))


def test_item_embedding_modes(model):
    ids = torch.tensor([1, 2, 3, 6])  # train counts 1, 2, 0, 0
    torch.testing.assert_close(model.item_latents(ids, "cf"), model.item_joint[ids])
    torch.testing.assert_close(model.item_latents(ids, "text"), model.item_text[ids])
    auto = model.item_latents(ids, "auto")
    torch.testing.assert_close(auto[:2], model.item_joint[ids[:2]])
    torch.testing.assert_close(auto[2:], model.item_text[ids[2:]])
    assert not torch.equal(rank(model, item_embedding="cf"), rank(model, item_embedding="text"))


def test_text_item_prob_feeds_f_i_both_tables_in_training_only(model):
    """text_item_prob > 0: while training, a seeded share of the item occurrences reads q_i instead of e_i (F_I learns
    both, so q_i works for cold items at inference); in eval mode the configured table is read as before."""
    ids = torch.tensor([1, 2] * 200)  # both warm
    model.config.text_item_prob = 0.5
    try:
        model.train()
        torch.manual_seed(0)
        mixed = model.item_latents(ids, "cf")
        from_text = (mixed == model.item_text[ids]).all(-1)
        assert (from_text | (mixed == model.item_joint[ids]).all(-1)).all()
        assert 0.4 < from_text.float().mean().item() < 0.6
        torch.manual_seed(0)
        torch.testing.assert_close(model.item_latents(ids, "cf"), mixed)  # seeded
        model.eval()
        torch.testing.assert_close(model.item_latents(ids, "cf"), model.item_joint[ids])
    finally:
        model.config.text_item_prob = 0.0
        model.eval()


def test_recommend_accepts_ids_or_titles(model):
    by_id = model.recommend([1, 2, 3], [6, 9, 12])
    by_title = model.recommend([TITLES[1], TITLES[2], TITLES[3]], [TITLES[6], TITLES[9], TITLES[12]])
    assert [r["item_id"] for r in by_id] == [r["item_id"] for r in by_title]
    assert sorted(r["item_id"] for r in by_id) == [6, 9, 12]
    assert by_id[0]["score"] >= by_id[-1]["score"]
    with pytest.raises(ValueError, match="not in the item catalogue"):
        model.recommend(["No Such Movie"], [6])
    with pytest.raises(ValueError, match="outside"):
        model.recommend([1], [NUM_ITEMS + 5])


# ------------------------------------------------------------------------------------------- save / load
def test_checkpoint_contains_no_llm_tensor(model, tmp_path):
    from safetensors import safe_open

    model.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
        shapes = [tuple(f.get_slice(k).get_shape()) for k in keys]
    assert keys and not [k for k in keys if k.startswith("llm.")]
    assert {k.split(".")[0] for k in keys} == {"user_projector", "item_projector", "cf_model", "item_joint", "item_text", "item_train_count"}
    llm_shapes = {tuple(p.shape) for p in model.llm.parameters()}
    assert not any(s in llm_shapes and len(s) == 2 and s[0] == 49152 for s in shapes)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model_type"] == "allmrec" and cfg["llm_hidden_size"] == 32 and cfg["cf_config"]["model_type"] == "sasrec"
    assert json.loads((tmp_path / "item_catalogue.json").read_text())["titles"] == TITLES


def test_save_load_reproduces_scores(model, tmp_path, tokenizer):
    model.user_projector.fc2.bias.data.add_(0.5)  # make the projectors differ from a fresh init
    before_rank = rank(model)
    batch = encode_prompts(model.tokenizer, prompts(model), padding_side="left")
    before_gen = model.generate_answers(batch["input_ids"], batch["attention_mask"], batch["item_ids"],
                                        cf_input_ids=cf_inputs(model), max_new_tokens=5)
    model.save_pretrained(tmp_path)
    llm = model.llm
    llm_state = copy.deepcopy(llm.state_dict())
    # CF model rebuilt from the stored config (random init), weights restored from the checkpoint
    loaded = ALLMRecForRecommendation.from_pretrained(tmp_path, llm=llm, tokenizer=tokenizer)
    assert loaded.cf_model is not model.cf_model
    torch.testing.assert_close(rank(loaded), before_rank, rtol=0, atol=0)
    after_gen = loaded.generate_answers(batch["input_ids"], batch["attention_mask"], batch["item_ids"],
                                        cf_input_ids=cf_inputs(model), max_new_tokens=5)
    assert torch.equal(before_gen, after_gen)
    for k, v in llm.state_dict().items():
        assert torch.equal(v, llm_state[k]), k
    assert loaded.item_titles == TITLES and not loaded.training
    # config overrides at load time
    text_model = ALLMRecForRecommendation.from_pretrained(tmp_path, llm=llm, tokenizer=tokenizer, item_embedding="text")
    assert text_model.config.item_embedding == "text"
    torch.testing.assert_close(rank(text_model), rank(loaded, item_embedding="text"))


def test_loading_onto_a_mismatched_llm_fails_clearly(model, tmp_path, tokenizer):
    model.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="hidden size"):
        ALLMRecForRecommendation.from_pretrained(tmp_path, llm=tiny_llm(hidden=48), tokenizer=tokenizer)
    with pytest.raises(CheckpointError, match="vocabulary"):
        ALLMRecForRecommendation.from_pretrained(tmp_path, llm=tiny_llm(vocab=49160), tokenizer=tokenizer)
    tokenizer.add_tokens(["Toy Story"])  # now splits the fingerprint probe differently
    with pytest.raises(CheckpointError, match="tokenizer mismatch"):
        ALLMRecForRecommendation.from_pretrained(tmp_path, llm=model.llm, tokenizer=tokenizer)


def test_missing_or_corrupt_files_fail_clearly(model, tmp_path, tokenizer):
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        ALLMRecForRecommendation.from_pretrained(tmp_path, llm=model.llm, tokenizer=tokenizer)
    weights.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        ALLMRecForRecommendation.from_pretrained(tmp_path, llm=model.llm, tokenizer=tokenizer)
    with pytest.raises(CheckpointError, match="config"):
        ALLMRecForRecommendation.from_pretrained(tmp_path / "nowhere", llm=model.llm, tokenizer=tokenizer)


def test_auto_classes_load_the_checkpoint(model, tmp_path, tokenizer):
    from transformers import AutoConfig, AutoModel

    import allmrec.model  # noqa: F401  (registers model_type "allmrec")

    allmrec.model.register_auto_classes()
    model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), ALLMRecConfig)
    loaded = AutoModel.from_pretrained(tmp_path, llm=model.llm, tokenizer=tokenizer)
    assert isinstance(loaded, ALLMRecForRecommendation)
    torch.testing.assert_close(rank(loaded), rank(model))


@pytest.mark.parametrize(
    "field,value",
    [("domain", "books"), ("prompt_style", "x"), ("item_embedding", "both"), ("history_len", 0),
     ("rank_normalization", "max"), ("placeholder_handling", "resize"), ("generation_repetition_penalty", 0),
     ("match_weight", -1.0), ("match_temperature", 0.0)],
)
def test_config_validation(field, value):
    with pytest.raises(ALLMRecConfigError, match=field):
        ALLMRecConfig(**{field: value})


def test_config_defaults_are_the_papers():
    c = ALLMRecConfig()
    assert (c.llm_name_or_path, c.cf_hidden_size, c.latent_dim, c.history_len, c.num_candidates) == ("facebook/opt-6.7b", 50, 128, 10, 20)
    assert (c.generation_repetition_penalty, c.item_embedding, c.prompt_style) == (1.5, "cf", "paper")


# ------------------------------------------------------------------------------------------- real LLM
@pytest.mark.slow
def test_real_smollm2_train_steps_and_rank(smol_tokenizer_path, tokenizer):
    """Load SmolLM2-135M-Instruct, take two training steps on the projectors, rank two users."""
    from transformers import AutoModelForCausalLM

    llm = AutoModelForCausalLM.from_pretrained(smol_tokenizer_path)
    m = tiny_model(tokenizer, llm=llm)
    assert m.config.llm_hidden_size == 576
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-3, betas=(0.9, 0.98))
    batch = encode_prompts(tokenizer, prompts(m, with_targets=True), with_targets=True, padding_side="right")
    m.train()
    losses = []
    for _ in range(2):
        loss = m(**batch, cf_input_ids=cf_inputs(m)).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[1] < losses[0]
    m.eval()
    scores = rank(m)
    assert scores.shape == (2, 4) and torch.isfinite(scores).all()
    # the trained target gets a higher likelihood than under the untrained projectors
    fresh = rank(tiny_model(tokenizer, llm=llm))
    for r, t in enumerate(TARGETS):
        c = CANDIDATES[r].index(t)
        assert scores[r, c] > fresh[r, c]


REMOTE_SCRIPT = r"""
import sys
sys.modules["allmrec"] = None  # as on a machine without the package: any `import allmrec...` fails
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
from remote_allmrec.configuration_allmrec import ALLMRecConfig
from remote_allmrec.modeling_allmrec import ALLMRecForRecommendation
from remote_allmrec.processing_allmrec import encode_prompts
from remote_allmrec.prompts import PromptBuilder

try:
    ALLMRecConfig(domain="books")
except ValueError as e:
    assert "domain" in str(e)
else:
    raise SystemExit("config validation did not raise")
tok = AutoTokenizer.from_pretrained(sys.argv[1])
torch.manual_seed(0)
llm = LlamaForCausalLM(LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True))
titles = [""] + [f"M{i}" for i in range(1, 6)]
m = ALLMRecForRecommendation.from_components(llm, tok, None, torch.rand(6, 4), item_titles=titles, cf_hidden_size=8)
p = PromptBuilder().build([1, 2], [3, 4, 5], titles)
b = encode_prompts(tok, [p], padding_side="left")
u = torch.randn(1, 8)
s1 = m.score_candidates(b["input_ids"], b["attention_mask"], [[[10, 2], [11, 2], [12, 2]]], item_ids=b["item_ids"], user_embeds=u)
m.save_pretrained(sys.argv[2])
m2 = ALLMRecForRecommendation.from_pretrained(sys.argv[2], llm=llm, tokenizer=tok)
s2 = m2.score_candidates(b["input_ids"], b["attention_mask"], [[[10, 2], [11, 2], [12, 2]]], item_ids=b["item_ids"], user_embeds=u)
assert torch.equal(s1, s2), (s1, s2)
print("REMOTE-OK")
"""


def test_model_files_work_without_the_allmrec_package(tmp_path, smol_tokenizer_path):
    """configuration/modeling/processing/prompts import and run with only torch + transformers + siblings."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import allmrec.model as pkg

    src = Path(pkg.__file__).parent
    dest = tmp_path / "remote_allmrec"
    dest.mkdir()
    (dest / "__init__.py").write_text("")
    for name in ("configuration_allmrec.py", "modeling_allmrec.py", "processing_allmrec.py", "prompts.py", "llm_scoring.py",
                 "matching.py", "pipeline_allmrec.py"):
        shutil.copy(src / name, dest / name)
    proc = subprocess.run([sys.executable, "-c", REMOTE_SCRIPT, smol_tokenizer_path, str(tmp_path / "ckpt")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0 and "REMOTE-OK" in proc.stdout, proc.stderr[-3000:]


def test_soft_token_norm_embedding_rescales_every_spliced_vector(tokenizer):
    # Option beyond the paper: each soft token takes the LLM's mean token-embedding norm, its direction
    # still comes from F_U / F_I (so it keeps item information: distinct items stay distinct).
    model = tiny_model(tokenizer, soft_token_norm="embedding")
    batch = encode_prompts(model.tokenizer, prompts(model), padding_side="left")
    ids = batch["input_ids"]
    with torch.no_grad():
        embeds = model.embed_prompt(ids, batch["item_ids"], cf_input_ids=cf_inputs(model))
        target = model.llm.get_input_embeddings().weight.norm(dim=-1).mean()
        o_i = model.item_projector(model.item_joint[HISTORIES[0][0]])
    soft = (ids == model.user_token_id) | (ids == model.history_token_id) | (ids == model.candidate_token_id)
    norms = embeds[soft].norm(dim=-1)
    torch.testing.assert_close(norms, torch.full_like(norms, float(target)), rtol=1e-5, atol=1e-5)
    first_item = ((ids[0] == model.history_token_id) | (ids[0] == model.candidate_token_id)).nonzero()[0, 0]
    torch.testing.assert_close(embeds[0, first_item], o_i * (target / o_i.norm()), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        tiny_model(tokenizer, soft_token_norm="huge")


# ------------------------------------------------------------------------------------------- learning options
@pytest.mark.parametrize("normalization", ["sum", "mean"])
def test_packed_scoring_equals_the_kv_cache_path_and_the_reference(tokenizer, normalization):
    packed = tiny_model(tokenizer, rank_scoring="packed")
    cached = tiny_model(tokenizer, rank_scoring="cache")
    cached.load_state_dict(packed.state_dict())
    a, b = rank(packed, normalization=normalization), rank(cached, normalization=normalization)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a, _reference_scores(packed, normalization), rtol=1e-4, atol=1e-4)


def test_copy_layout_puts_item_tokens_before_titles_and_the_user_token_last(tokenizer):
    m = tiny_model(tokenizer, prompt_layout="copy")
    batch = encode_prompts(m.tokenizer, prompts(m), padding_side="left")
    ids = batch["input_ids"]
    assert bool((ids[:, -1] == m.user_token_id).all())  # right before the answer
    assert int((ids == m.user_token_id).sum()) == 2
    text = m.tokenizer.decode(ids[0][batch["attention_mask"][0].bool()])
    assert f'"[HistoryEmb] {TITLES[2]}"' in text and f'"[CandidateEmb] {TITLES[6]}"' in text
    assert text.endswith('The recommendation is "[UserRep]')
    # splicing is by mask: the soft tokens land where the placeholders are, in order
    with torch.no_grad():
        embeds = m.embed_prompt(ids, batch["item_ids"], cf_input_ids=cf_inputs(m))
        o_i = m.item_projector(m.item_joint[CANDIDATES[0][0]])
    first_cand = int((ids[0] == m.candidate_token_id).nonzero()[0])
    torch.testing.assert_close(embeds[0, first_cand], o_i)


def _candidate_batch(m):
    from allmrec.model.llm_scoring import pad_continuations
    from allmrec.model.processing_allmrec import pad_token_id

    batch = encode_prompts(m.tokenizer, prompts(m), padding_side="left")
    batch["candidate_input_ids"], batch["candidate_mask"] = pad_continuations(continuations(m), pad_token_id(m.tokenizer))
    batch["target_index"] = torch.tensor([row.index(t) for row, t in zip(CANDIDATES, TARGETS)])
    batch["cf_input_ids"] = cf_inputs(m)
    return batch


@pytest.mark.parametrize("objective", ["listwise", "token", "token+listwise"])
def test_candidate_objectives_match_a_hand_computation(tokenizer, objective):
    m = tiny_model(tokenizer, train_objective=objective, listwise_normalization="mean")
    out = m(**_candidate_batch(m))
    ref_mean = _reference_scores(m, "mean")
    ref_sum = _reference_scores(m, "sum")
    target = torch.tensor([row.index(t) for row, t in zip(CANDIDATES, TARGETS)])
    listwise = torch.nn.functional.cross_entropy(ref_mean, target, reduction="none")
    token = -ref_mean[torch.arange(2), target]  # mean NLL of the target's tokens
    expected = {"listwise": listwise, "token": token, "token+listwise": listwise + token}[objective].mean()
    torch.testing.assert_close(out.loss, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.candidate_scores, ref_mean, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(ref_mean, ref_sum)
    out.loss.backward()
    assert m.user_projector.fc1.weight.grad is not None and m.item_projector.fc1.weight.grad is not None
    assert all(p.grad is None for p in m.llm.parameters())


def test_zscore_standardisation_is_stored_and_reloaded(tokenizer, tmp_path):
    m = tiny_model(tokenizer, input_standardization="zscore")
    x = torch.randn(50, 8) * 3 + 1
    m.set_user_statistics(x)
    torch.testing.assert_close(m.user_mean, x.mean(0))
    z = m.item_latents(torch.arange(1, NUM_ITEMS + 1))
    torch.testing.assert_close(z.mean(0), torch.zeros(LATENT), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(LATENT), atol=1e-5, rtol=0)
    before = rank(m)
    m.save_pretrained(tmp_path / "ckpt")
    loaded = ALLMRecForRecommendation.from_pretrained(tmp_path / "ckpt", llm=m.llm, tokenizer=tokenizer)
    torch.testing.assert_close(loaded.user_std, m.user_std)
    torch.testing.assert_close(rank(loaded), before)


def test_item_permutation_swaps_soft_tokens_only(model):
    before = rank(model)
    perm = torch.arange(NUM_ITEMS + 1)
    perm[1:] = torch.roll(perm[1:], 1)
    model.item_permutation = perm
    assert torch.equal(model.item_latents(torch.tensor([5])), model.item_joint[[4]])
    shuffled = rank(model)
    model.item_permutation = None
    assert not torch.allclose(before, shuffled)
    torch.testing.assert_close(rank(model), before)


def test_copy_layout_answers_parse_and_stop_at_one_quote(tokenizer):
    from allmrec.model.llm_scoring import ClosingQuoteCriteria, quote_count_table
    from allmrec.model.matching import match_candidate

    m = tiny_model(tokenizer, prompt_layout="copy")
    assert m.prompt_builder().target_text("Fargo (1996)") == ' Fargo (1996)"'
    answer = m.decoded_answer(' Fargo (1996)" is what')
    assert match_candidate(answer, ["Heat (1995)", "Fargo (1996)"]) == 1
    assert tiny_model(tokenizer).decoded_answer(' "Heat (1995)"') == ' "Heat (1995)"'
    table = quote_count_table(tokenizer, 49152)
    ids = torch.tensor([tokenizer(' Fargo (1996)"', add_special_tokens=False)["input_ids"]])
    assert bool(ClosingQuoteCriteria(table, quotes=1)(ids)[0]) and not bool(ClosingQuoteCriteria(table)(ids)[0])


def test_matching_loss_adds_the_cosine_cross_entropy_per_user(tokenizer):
    m = tiny_model(tokenizer, train_objective="listwise", match_weight=0.5, match_temperature=0.2)
    batch = _candidate_batch(m)
    without = m(**batch)
    batch["candidate_item_ids"] = torch.tensor(CANDIDATES)
    out = m(**batch)
    # hand computation: O_u = F_U(x^u), O_c = F_I(e_c), CE of the target under cos / temperature
    x = m.user_representation(cf_inputs(m))
    o_u = m.user_projector(x)
    o_c = m.item_projector(m.item_joint[torch.tensor(CANDIDATES)])
    cos = torch.stack([torch.nn.functional.cosine_similarity(o_u[b].unsqueeze(0), o_c[b], dim=-1) for b in range(2)])
    match = torch.nn.functional.cross_entropy(cos / 0.2, batch["target_index"])
    torch.testing.assert_close(out.match_loss, match, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, without.loss + 0.5 * match, rtol=1e-5, atol=1e-5)
    m.config.match_weight = 0.0
    torch.testing.assert_close(m(**batch).loss, without.loss)


HOSTILE_TITLES = ["[CandidateEmb]", "A [HistoryEmb] B", "[UserRep] Returns", "Sequel <|im_end|>", "<|im_start|>system",
                  "<|endoftext|>", "</s> and <s>", "<pad> Story", "\x000\x00 marker", "<|reserved_special_token_0|>"]


@pytest.mark.parametrize("layout", ["paper", "copy"])
def test_titles_that_look_like_special_tokens_are_plain_text(tokenizer, layout):
    """Catalogue text can never become a placeholder or a special token: it ranks and generates like any title."""
    titles = list(TITLES)
    for k, hostile in enumerate(HOSTILE_TITLES):
        titles[k + 1] = hostile
    m = tiny_model(tokenizer, prompt_layout=layout)
    m.item_titles = titles
    special = set(tokenizer.all_special_ids) | {m.user_token_id, m.history_token_id, m.candidate_token_id}
    builder = m.prompt_builder()
    prompt = builder.build([1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11], titles, target_id=8)
    batch = encode_prompts(tokenizer, [prompt], with_targets=True, padding_side="right")
    ids = batch["input_ids"][0].tolist()
    assert sum(i == m.history_token_id for i in ids) == 5 and sum(i == m.candidate_token_id for i in ids) == 6
    assert sum(i == m.user_token_id for i in ids) == 1
    # the only special ids are the builder's placeholders and the EOS that ends the target
    n_special = sum(i in special for i in ids)
    assert n_special == 5 + 6 + 1 + 1 and ids[-1] == tokenizer.eos_token_id
    for hostile in HOSTILE_TITLES:
        assert not set(encode_target(tokenizer, builder.target_text(hostile))[:-1]) & special
    # ranking and generation run and are deterministic; the hostile target is scored like any other candidate
    ranked = m.recommend([1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11])
    assert ranked == m.recommend([1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11])
    assert sorted(r["item_id"] for r in ranked) == [6, 7, 8, 9, 10, 11]
    assert all(np.isfinite(r["score"]) for r in ranked)
    gen = encode_prompts(tokenizer, [builder.build([1, 2, 3], [6, 7, 8], titles)], padding_side="left")
    new = m.generate_answers(gen["input_ids"], gen["attention_mask"], item_ids=gen["item_ids"],
                             cf_input_ids=left_pad_histories([[1, 2, 3]], m.config.cf_max_seq_len), max_new_tokens=4)
    assert new.shape == (1, 4) or new.shape[1] <= 4


def test_segment_tokenization_equals_whole_text_tokenization_for_normal_titles(tokenizer):
    """Cutting the prompt at the builder's placeholders gives the same ids as tokenizing the whole string."""
    from allmrec.model.processing_allmrec import encode_prompt_ids

    m = tiny_model(tokenizer, prompt_layout="copy")
    for layout in ("paper", "copy"):
        m.config.prompt_layout = layout
        for p in prompts(m, with_targets=True):
            assert encode_prompt_ids(tokenizer, p) == tokenizer(p.text, add_special_tokens=True)["input_ids"]


def test_user_token_teacher_writes_the_targets_item_token_in_training_only(tokenizer):
    m = tiny_model(tokenizer, train_objective="listwise", user_token_teacher=1.0)
    batch = _candidate_batch(m)
    batch["candidate_item_ids"] = torch.tensor(CANDIDATES)
    target_ids = torch.tensor(TARGETS)
    m.train()
    forced = m(**batch).loss
    embeds = m.embed_prompt(batch["input_ids"], batch["item_ids"], cf_input_ids=batch["cf_input_ids"],
                            user_tokens=m.project_items(target_ids))
    expected = m._candidate_loss(embeds, batch["attention_mask"], batch["candidate_input_ids"], batch["candidate_mask"],
                                 batch["target_index"]).loss
    torch.testing.assert_close(forced, expected)
    m.eval()  # inference always reads F_U(x^u)
    torch.testing.assert_close(m(**batch).loss, m(**{k: v for k, v in batch.items() if k != "candidate_item_ids"}).loss)


def test_llm_lora_adapters_train_save_and_reload(tokenizer, tmp_path):
    from safetensors import safe_open

    m = tiny_model(tokenizer, llm_lora_rank=4, llm_lora_alpha=8, train_objective="listwise")
    assert m.config.llm_lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    lora = {n for n in trainable if ".lora_" in n}
    assert lora and all(n.startswith(("user_projector", "item_projector")) for n in trainable - lora)
    assert len(lora) == 2 * 4 * 2  # A and B x 4 projections x 2 layers
    before = rank(m)
    torch.testing.assert_close(before, rank(tiny_model(tokenizer)))  # B = 0: the adapted LLM starts as the base LLM
    loss = m(**_candidate_batch(m)).loss
    loss.backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in m.named_parameters() if ".lora_B" in n)
    for n, p in m.named_parameters():
        if ".lora_B" in n:
            p.data.normal_(std=0.5)  # as after training
    trained = rank(m)
    assert not torch.allclose(trained, before)
    m.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        llm_keys = [k for k in f.keys() if k.startswith("llm.")]
    assert llm_keys and all(".lora_" in k for k in llm_keys)  # adapters saved, never a base-LLM tensor
    loaded = ALLMRecForRecommendation.from_pretrained(tmp_path, llm=tiny_llm(), tokenizer=tokenizer)
    torch.testing.assert_close(rank(loaded), trained, rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="already carries LoRA"):
        ALLMRecForRecommendation.from_pretrained(tmp_path, llm=m.llm, tokenizer=tokenizer)


@pytest.mark.parametrize("layout", ["paper", "copy"])
def test_index_answers_label_the_candidates_and_score_one_token_each(tokenizer, layout):
    """answer_format="index": candidates labelled (A)..; the answer (training target, rank continuation) is a label,
    scored the same by the packed and the KV-cache paths; generated labels resolve to their candidate."""
    m = tiny_model(tokenizer, prompt_layout=layout, answer_format="index", rank_scoring="packed")
    b = m.prompt_builder()
    p = b.build(HISTORIES[0], CANDIDATES[0], TITLES, target_id=TARGETS[0])
    assert p.target == "B"
    if layout == "copy":  # one-back copy pattern: "[CandidateEmb]B) ..." ... "[UserRep]" -> "B"
        assert p.text.endswith(f" {m.config.user_token}") and f'{m.config.candidate_token}D) "' in p.text
    else:
        assert p.text.endswith(" (") and '(D) "' in p.text
    assert (m.config.user_token in p.text.rsplit("The recommendation is", 1)[1]) == (layout == "copy")
    conts = [[encode_target(tokenizer, a) for a in b.candidate_answers(row, TITLES)] for row in CANDIDATES]
    assert conts[0] == conts[1]  # a label's answer does not depend on the item behind it
    batch = encode_prompts(tokenizer, prompts(m), padding_side="left")
    args = dict(item_ids=batch["item_ids"], cf_input_ids=cf_inputs(m))
    packed = m.score_candidates(batch["input_ids"], batch["attention_mask"], conts, **args)
    cached = tiny_model(tokenizer, prompt_layout=layout, answer_format="index", rank_scoring="cache")
    cached.load_state_dict(m.state_dict())
    torch.testing.assert_close(packed, cached.score_candidates(batch["input_ids"], batch["attention_mask"], conts, **args),
                               rtol=1e-5, atol=1e-5)
    ranked = m.recommend(HISTORIES[0], CANDIDATES[0])
    assert sorted(r["item_id"] for r in ranked) == sorted(CANDIDATES[0])
    assert ranked[0]["score"] == pytest.approx(float(packed[0].max()), abs=1e-4)
    assert m.recommend_generate(HISTORIES[0], CANDIDATES[0])["item_id"] in (None, *CANDIDATES[0])
    assert b.resolve_answer("C) because", ["x", "y", "z"]) == '"z"' and b.resolve_answer("Zebra", ["x"]) == "Zebra"
    with pytest.raises(ValueError, match="at most 26"):
        b.build([1], list(range(1, 28)), [""] + [f"T{i}" for i in range(1, 40)])
