"""Stage-2 training: fit F_U and F_I so the frozen LLM names the next item (paper §4.2.3, Eq. 8).

Samples (as the official code, ``pre_train_phase2``): one per user per epoch (users with ≥ 2 training
items), target = the **last training item**, history = the training items before it (prompt: the last 10;
CF input: the last ``cf_max_seq_len``), candidates = the target + 19 negatives drawn **per epoch** from the
items the user never interacted with (train, valid or test), shuffled. Every draw comes from
``numpy.random.default_rng((seed, epoch, user_id))``, so a run is reproducible and independent of batch
order. Loss = the LLM's token cross-entropy on the target title + EOS only.

That is ``--recipe paper``. The ``listwise`` recipe (not in the paper; measured in ``docs/training.md`` and
``benchmarks/stage2_learning.py``) changes what stops a small LLM from learning the choice: the loss is the
listwise cross-entropy of the target among the 20 candidates' answer likelihoods plus the token loss
(``--objective``), the soft tokens go before the titles with the user token right before the answer
(``--prompt-layout copy``), x^u and e_i are standardised (``--input-standardization zscore``), lr 1e-3 with warm-up and cosine decay, and every position of a training
sequence can be a target (``--targets all``: the paper's A-LLMRec_all, §5.4.2). A matching loss (CE of the target under
cos(O_u, O_i) over the candidates, ``--match-weight``) is added, and run alone for ``--match-pretrain-epochs`` before
the LLM steps (:func:`pretrain_matching`, seconds). The default recipe, ``index-lora``, is ``listwise`` with one-label
answers and LoRA on the LLM (:mod:`allmrec.model.recipes`). Every field can be set on its own; the recipe only fills
the ones not given.

Loop: ``accelerate`` (CPU / one GPU / several GPUs alike), Adam(lr 1e-4, betas (0.9, 0.98)), batch 4,
5 epochs (paper); optional step / user budgets for demos; bf16 (fp16 without bf16 support) autocast on a
GPU and on a CPU with AVX512-BF16 / AMX; optional gradient checkpointing of the frozen LLM. Validation = rank-mode Hit@1 on a seeded subset of
validation users, after each epoch (or every ``eval_every`` steps); the best state is written atomically to
``--out`` (never the LLM weights) and training stops after ``patience`` validations without improvement.
``training_log.json`` records losses, validations and per-stage timings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AllmrecError, CheckpointError, DataError
from ..training.prompt_arguments import PromptTrainingArguments
from ..training.prompt_loop import TRAINING_LOG, PromptLoopHooks, run_prompt_training
from ..utils.io import atomic_directory, atomic_write_json
from ..utils.logging import StageTimer, get_logger
from ..utils.seeding import set_seed
from .recipes import DEFAULT_RECIPE, RECIPES

logger = get_logger(__name__)


@dataclass
class Stage2TrainingArguments(PromptTrainingArguments):
    """Options of ``allmrec train stage2``; defaults are the paper's (§5.1) where it gives one."""

    data: str = field(metadata={"help": "prepared dataset directory (allmrec data prepare)"})
    stage1: str = field(metadata={"help": "stage-1 output directory (allmrec train stage1): item_embeddings.safetensors + config.json"})
    out: str = field(metadata={"help": "output directory of the stage-2 checkpoint (no LLM weights inside)"})
    llm: str = field(default="facebook/opt-6.7b", metadata={"help": "frozen LLM: Hub id, local folder or asset name (smollm2-135m-instruct)"})
    cf_model: str | None = field(default=None, metadata={"help": "CF checkpoint; default: the cf_model_path recorded by stage 1"})
    epochs: int = field(default=5, metadata={"help": "passes over the training users (paper: 5)"})
    batch_size: int = field(default=4, metadata={"help": "users per optimisation step (paper: 4; official code: 2)"})
    recipe: str = field(default=DEFAULT_RECIPE, metadata={"help": f"preset for the fields below left unset (default {DEFAULT_RECIPE}): index-lora (listwise + one-label answers + LoRA r8 on the LLM: the best measured, not the paper's frozen LLM), listwise (listwise + matching losses, frozen LLM) or paper (§5.1 / Eq. 8)"})
    objective: str | None = field(default=None, metadata={"help": "token (paper Eq. 8), listwise (softmax CE over the candidates' answer likelihoods) or token+listwise"})
    listwise_normalization: str | None = field(default=None, metadata={"help": "candidate score in the listwise loss: sum (log P(answer)) or mean (per token; does not favour short titles)"})
    targets: str | None = field(default=None, metadata={"help": "last (paper: the last training item) or all (A-LLMRec_all, §5.4.2: any position of the sequence, seeded per (user, position, epoch))"})
    prompt_layout: str | None = field(default=None, metadata={"help": "paper (user token first, item token after each title) or copy (item token before each title, user token right before the answer)"})
    soft_tokens: str = field(default="both", metadata={"help": "soft tokens in the prompt: both (A-LLMRec), user (no item tokens: Table 9 'w/o joint embedding') or items (no user token: Table 9 'w/o user representation')"})
    answer_format: str | None = field(default=None, metadata={"help": "title (paper, listwise recipe: the answer is the quoted title) or index (index-lora recipe: candidates labelled (A)..(T), the answer is one label: the choice is one token; not in the paper)"})
    item_table: str = field(default="stage1", metadata={"help": "F_I's input table: stage1 (e_i / q_i) or random (seeded random vectors with the stage-1 tables' mean and spread: Table 9 'with random joint embedding')"})
    input_standardization: str | None = field(default=None, metadata={"help": "none (paper) or zscore: standardise x^u and e_i per dimension before F_U / F_I"})
    lr: float | None = field(default=None, metadata={"help": "Adam learning rate (paper: 1e-4; listwise recipe: 1e-3)"})
    lr_schedule: str | None = field(default=None, metadata={"help": "constant (paper) or cosine (linear warm-up, then cosine decay to a tenth of the lr over the planned steps)"})
    warmup_steps: int | None = field(default=None, metadata={"help": "linear warm-up steps (paper: 0; listwise recipe: 10)"})
    match_weight: float | None = field(default=None, metadata={"help": "weight of the auxiliary matching loss, CE of the target under cos(O_u, O_i) / temperature (paper: 0; listwise recipe: 1; needs a listwise objective)"})
    match_temperature: float = field(default=0.1, metadata={"help": "temperature of the matching loss"})
    user_token_teacher: float | None = field(default=None, metadata={"help": "probability that a training prompt's user token is the target's own O_i (teacher forcing the copy, not in the paper; default 0; needs a listwise objective)"})
    match_pretrain_epochs: int | None = field(default=None, metadata={"help": "epochs of the matching loss alone (no LLM pass, ~1 s each) before the LLM steps (paper: 0; listwise recipe: 20)"})
    llm_lora_rank: int | None = field(default=None, metadata={"help": "0 (paper, listwise recipe): frozen LLM; > 0: LoRA adapters of this rank on the LLM's attention projections train with F_U / F_I (not in the paper; index-lora recipe: 8)"})
    llm_lora_alpha: float = field(default=16.0, metadata={"help": "LoRA alpha (update scaled by alpha / rank)"})
    llm_lora_targets: str | None = field(default=None, metadata={"help": "comma-separated module names for LoRA (default: q_proj,k_proj,v_proj,o_proj)"})
    lora_lr: float | None = field(default=None, metadata={"help": "learning rate of the LoRA adapters (default: --lr; index-lora recipe: 6e-4)"})
    beta1: float = field(default=0.9, metadata={"help": "Adam beta1 (official code: 0.9)"})
    beta2: float = field(default=0.98, metadata={"help": "Adam beta2 (official code: 0.98)"})
    prompt_style: str = field(default="paper", metadata={"help": "paper (Fig. 3), official (authors' code string) or fig6"})
    item_embedding: str = field(default="cf", metadata={"help": "F_I input: cf (e_i, paper), text (q_i) or auto (q_i for items unseen in training)"})
    text_item_prob: float = field(default=0.0, metadata={"help": "training: probability that an item's F_I input is q_i instead of e_i (0 = paper; > 0 trains F_I on both, so --item-embedding auto / text works for cold items; not in the paper)"})
    soft_token_norm: str | None = field(default=None, metadata={"help": "none (paper) or embedding: rescale every soft token to the LLM's mean token-embedding norm (not in the paper)"})
    rank_scoring: str = field(default="packed", metadata={"help": "validation / rank mode: packed (one forward pass over prompt + all answers) or cache (KV cache copied per candidate)"})

    def apply_recipe(self) -> None:
        """Fill every field left at None from ``RECIPES[self.recipe]``."""
        if not 0.0 <= self.text_item_prob <= 1.0:
            raise AllmrecError(f"--text-item-prob must be in [0, 1], got {self.text_item_prob}")
        if self.recipe not in RECIPES:
            raise AllmrecError(f"--recipe={self.recipe!r} is invalid: choose one of {', '.join(RECIPES)}")
        for name, value in RECIPES[self.recipe].items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def validate(self) -> None:
        self.apply_recipe()
        for name, allowed in FIELD_CHOICES.items():
            if getattr(self, name) not in allowed:
                self.invalid(name, f"choose one of {', '.join(allowed)}")
        for name in ("warmup_steps", "match_weight", "match_pretrain_epochs"):
            if getattr(self, name) < 0:
                self.invalid(name, "must be >= 0")
        if self.match_temperature <= 0:
            self.invalid("match_temperature", "must be > 0")
        if self.llm_lora_rank < 0:
            self.invalid("llm_lora_rank", "must be >= 0 (0 = frozen LLM)")
        if self.llm_lora_alpha <= 0 or (self.lora_lr is not None and self.lora_lr <= 0):
            self.invalid("llm_lora_alpha", "LoRA alpha and --lora-lr must be > 0")
        if self.match_weight > 0 and self.objective == "token":
            self.invalid("match_weight", "the matching loss is per user: use it with --objective listwise or token+listwise, or pass --match-weight 0")
        if not 0.0 <= self.user_token_teacher <= 1.0:
            self.invalid("user_token_teacher", "must be a probability in [0, 1]")
        if self.user_token_teacher > 0 and self.objective == "token":
            self.invalid("user_token_teacher", "needs the candidates' item ids: use --objective listwise or token+listwise, or pass --user-token-teacher 0")
        if self.lr <= 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            self.invalid("lr", "lr must be > 0 and betas in [0, 1)")
        self.validate_prompt_training()


#: allowed values of the stage-2 learning fields (validation here, argparse choices in ``model/cli.py``)
FIELD_CHOICES: dict[str, tuple[str, ...]] = {
    "objective": ("token", "listwise", "token+listwise"), "listwise_normalization": ("sum", "mean"),
    "targets": ("last", "all"), "prompt_layout": ("paper", "copy"), "input_standardization": ("none", "zscore"),
    "lr_schedule": ("constant", "cosine"), "soft_token_norm": ("none", "embedding"), "rank_scoring": ("packed", "cache"),
    "soft_tokens": ("both", "user", "items"), "item_table": ("stage1", "random"), "answer_format": ("title", "index"),
}



# ---------------------------------------------------------------------------------------------- samples
class Stage2Samples:
    """Seeded per-epoch training samples (see the module docstring): one per user per epoch.

    ``targets="all"`` (A-LLMRec_all) draws the target position per (user, epoch) instead of always taking the last
    item, so over epochs every position of every sequence is used; the negatives avoid the user's whole sequence.
    """

    def __init__(self, dataset, num_negatives: int = 19, seed: int = 0, max_users: int | None = None,
                 targets: str = "last", only_users=None) -> None:
        if targets not in ("last", "all"):
            raise ValueError(f"targets must be last or all, got {targets!r}")
        self.targets = targets
        users = dataset.split("users")
        self.num_items = dataset.num_items
        self.num_negatives = num_negatives
        self.seed = seed
        train = [np.asarray(s, dtype=np.int64) for s in users["train"]]
        valid = np.asarray(users["valid"], dtype=np.int64)
        test = np.asarray(users["test"], dtype=np.int64)
        user_ids = np.asarray(users["user_id"], dtype=np.int64)
        # only_users: the user ids to train on (the prepared few-shot subset, paper Table 6); None = everyone
        keep = None if only_users is None else {int(u) for u in only_users}
        eligible = [i for i, s in enumerate(train) if len(s) >= 2 and (keep is None or int(user_ids[i]) in keep)]
        self.skipped = (len(train) if keep is None else len(keep)) - len(eligible)
        if max_users and max_users < len(eligible):
            pick = np.random.default_rng(seed).choice(len(eligible), size=int(max_users), replace=False)
            eligible = [eligible[i] for i in np.sort(pick)]
        if not eligible:
            raise DataError(f"{dataset.path}: no user has 2+ training items; stage 2 has nothing to train on")
        self.user_ids = user_ids[eligible]
        self.sequences = [train[i] for i in eligible]
        self.seen = [set(train[i].tolist()) | {int(valid[i]), int(test[i])} - {0} for i in eligible]
        if self.num_items - 1 < num_negatives:
            raise DataError(f"{dataset.path} has {self.num_items} items: too few for {num_negatives} negatives")

    def __len__(self) -> int:
        return len(self.user_ids)

    def epoch_order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng((self.seed, epoch, 7)).permutation(len(self))

    def sample(self, index: int, epoch: int) -> dict[str, Any]:
        """``{"user_id", "history", "candidates", "target"}`` for one user in one epoch."""
        seq = self.sequences[index]
        uid = int(self.user_ids[index])
        rng = np.random.default_rng((self.seed, epoch, uid))
        # last: the last training item (paper); all (A-LLMRec_all): a position 1..len-1 drawn for this (user, epoch),
        # then the negatives from (seed, epoch, user, position), so each draw depends only on its own key
        position = len(seq) - 1 if self.targets == "last" else int(rng.integers(1, len(seq)))
        if self.targets == "all":
            rng = np.random.default_rng((self.seed, epoch, uid, position))
        seen = self.seen[index]
        if len(seen) + self.num_negatives > self.num_items:
            raise DataError(f"user {uid} has interacted with too many items to draw {self.num_negatives} negatives")
        negatives: list[int] = []
        chosen: set[int] = set()
        while len(negatives) < self.num_negatives:
            for item in rng.integers(1, self.num_items + 1, size=2 * self.num_negatives).tolist():
                if item not in seen and item not in chosen:
                    chosen.add(item)
                    negatives.append(item)
                    if len(negatives) == self.num_negatives:
                        break
        target = int(seq[position])
        candidates = np.array(negatives + [target], dtype=np.int64)[rng.permutation(self.num_negatives + 1)]
        return {"user_id": uid, "history": seq[:position], "candidates": candidates, "target": target}


# ---------------------------------------------------------------------------------------------- helpers
def read_stage1(path: str | Path) -> tuple[dict, dict]:
    """``(stage-1 config dict, {"joint", "text"} tensors)`` from a stage-1 output directory."""
    from ..alignment import load_stage1_item_embeddings

    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{path} is not a stage-1 output (no config.json); run `allmrec train stage1`")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_file} is corrupt ({e}); re-run `allmrec train stage1`") from e
    return cfg, load_stage1_item_embeddings(path)


def build_model(args: Stage2TrainingArguments, dataset, device: str):
    """Load LLM, CF model and stage-1 tables; return a fresh :class:`ALLMRecForRecommendation`."""
    from .. import __version__
    from ..assets import asset_provenance, canonical_id
    from ..cf import load_cf_model
    from .llm_loading import llm_load_kwargs
    from .modeling_allmrec import ALLMRecForRecommendation, load_llm

    args.apply_recipe()  # callers may pass arguments that were never validated
    s1_cfg, tables = read_stage1(args.stage1)
    if args.item_table == "random":
        tables = random_item_tables(tables, args.seed)
    cf_path = args.cf_model or s1_cfg.get("cf_model_path")
    if not cf_path:
        raise CheckpointError(f"{args.stage1}/config.json records no cf_model_path; pass --cf-model")
    cf = load_cf_model(cf_path)
    if int(cf.config.num_items) != dataset.num_items or tables["joint"].shape[0] != dataset.num_items + 1:
        raise DataError(
            f"item counts differ: dataset {dataset.num_items}, CF model {cf.config.num_items}, stage-1 tables "
            f"{tables['joint'].shape[0] - 1}; use the stage-1 / CF outputs trained on {args.data}"
        )
    llm, tokenizer = load_llm(args.llm, **llm_load_kwargs(args.llm_dtype, device, args.llm_quantization, args.llm_device_map))
    model = ALLMRecForRecommendation.from_components(
        llm, tokenizer, cf,
        item_joint=tables["joint"], item_text=tables["text"], item_train_count=dataset.item_popularity,
        item_titles=dataset.titles, llm_name_or_path=canonical_id(args.llm), llm_source=asset_provenance(args.llm),
        domain=args.domain or dataset.domain, prompt_style=args.prompt_style, item_embedding=args.item_embedding,
        text_item_prob=args.text_item_prob,
        soft_token_norm=args.soft_token_norm, prompt_layout=args.prompt_layout,
        soft_token_set=args.soft_tokens, item_table=args.item_table, answer_format=args.answer_format,
        input_standardization=args.input_standardization, train_objective=args.objective,
        listwise_normalization=args.listwise_normalization, rank_scoring=args.rank_scoring,
        match_weight=args.match_weight, match_temperature=args.match_temperature, user_token_teacher=args.user_token_teacher,
        llm_lora_rank=args.llm_lora_rank, llm_lora_alpha=args.llm_lora_alpha,
        llm_lora_target_modules=[t.strip() for t in args.llm_lora_targets.split(",") if t.strip()] if args.llm_lora_targets else None,
        cf_model_path=str(cf_path), stage1_path=str(args.stage1), dataset_name=dataset.name, allmrec_version=__version__,
    )
    if args.input_standardization == "zscore":
        model.set_user_statistics(training_user_representations(model, dataset))
    if args.gradient_checkpointing:
        model.enable_llm_gradient_checkpointing()
    return model


def random_item_tables(tables: dict, seed: int) -> dict:
    """Stage-1 tables replaced by seeded Gaussian vectors with each dimension's mean and standard deviation (paper
    Table 9 row 4: F_I then reads item vectors that carry no collaborative or text knowledge); row 0 stays padding."""
    import torch

    g = torch.Generator().manual_seed(int(seed) + 9)
    out = {}
    for name, table in tables.items():
        rows = table[1:].float()
        fake = torch.randn(rows.shape, generator=g) * rows.std(0, keepdim=True) + rows.mean(0, keepdim=True)
        out[name] = torch.cat([torch.zeros_like(table[:1]).float(), fake]).to(table.dtype)
    return out


def training_user_representations(model, dataset, batch_size: int = 256):
    """x^u of every training user from their training sequence minus its last item (the statistics of zscore)."""
    import torch

    from .modeling_allmrec import left_pad_histories

    users = dataset.split("users")
    train, user_ids = users["train"], users["user_id"]  # each column read once (a datasets column is rebuilt per access)
    keep = [k for k, s in enumerate(train) if len(s) >= 2]
    seqs = [list(train[k])[:-1] for k in keep]
    # user ids too: CF models that score by user (NCF) read nothing else
    ids = torch.as_tensor([int(user_ids[k]) for k in keep], dtype=torch.long)
    if not seqs:
        raise DataError(f"{dataset.path}: no user has 2+ training items; stage 2 has nothing to train on")
    out = []
    for start in range(0, len(seqs), batch_size):
        out.append(model.user_representation(left_pad_histories(seqs[start:start + batch_size], model.config.cf_max_seq_len),
                                             ids[start:start + batch_size]))
    return torch.cat(out)


def collate(model, samples: list[dict]) -> dict:
    """Training batch with CF histories and either (``train_objective="token"``) the right-padded prompt + target
    with labels on target + EOS, or (listwise objectives) the left-padded prompt, every candidate's answer tokens
    ``candidate_input_ids`` / ``candidate_mask`` ``(B, C, L)`` and the target's position ``target_index``."""
    import torch

    from .llm_scoring import pad_continuations
    from .modeling_allmrec import left_pad_histories
    from .processing_allmrec import encode_prompts, encode_target, pad_token_id

    builder = model.prompt_builder()
    titles = model.item_titles
    prompts = [builder.build(s["history"], s["candidates"], titles, target_id=s["target"]) for s in samples]
    if getattr(model.config, "train_objective", "token") == "token":
        batch = encode_prompts(model.tokenizer, prompts, with_targets=True, padding_side="right")
    else:
        batch = encode_prompts(model.tokenizer, prompts, padding_side="left")
        answers = [[encode_target(model.tokenizer, a) for a in builder.candidate_answers(s["candidates"], titles)]
                   for s in samples]
        batch["candidate_input_ids"], batch["candidate_mask"] = pad_continuations(answers, pad_token_id(model.tokenizer))
        batch["target_index"] = torch.tensor([int(np.flatnonzero(np.asarray(s["candidates"]) == s["target"])[0]) for s in samples])
        batch["candidate_item_ids"] = torch.as_tensor(np.stack([np.asarray(s["candidates"], dtype=np.int64) for s in samples]))
    batch["cf_input_ids"] = left_pad_histories([s["history"] for s in samples], model.config.cf_max_seq_len)
    batch["user_ids"] = torch.tensor([s["user_id"] for s in samples], dtype=torch.long)
    return batch


#: sampler epochs used by the matching pre-training (far from any real epoch number)
MATCH_EPOCH_OFFSET = 1_000_000


def pretrain_matching(model, samples: Stage2Samples, dataset, epochs: int, lr: float, seed: int, batch_size: int = 32,
                      valid_users: int = 200, progress: bool = True) -> list[dict]:
    """Fit F_U / F_I to the matching loss alone (no LLM pass) for ``epochs`` passes over ``samples``.

    The same seeded sampler as the LLM steps, at epochs ``MATCH_EPOCH_OFFSET + e`` (so the LLM epochs see other
    draws). Cheap: one epoch of ml-100k is ~1 s on 2 cores, against ~20 s for
    one LLM step. Returns one record per epoch with the mean loss and the token-space Hit@1 (the candidate with
    the highest cos(O_u, O_i)) on a seeded subset of validation users: the ceiling of what the LLM can read by matching.
    """
    import torch
    from tqdm.auto import tqdm

    from ..evaluation.subsets import subset_rows
    from .modeling_allmrec import left_pad_histories

    torch.manual_seed(seed)
    params = list(model.user_projector.parameters()) + list(model.item_projector.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    rows = subset_rows(dataset.eval_rows("valid"), valid_users, seed) if valid_users else None

    def users_of(histories, user_ids):
        return model.user_representation(left_pad_histories(histories, model.config.cf_max_seq_len),
                                         torch.as_tensor(np.asarray(user_ids), dtype=torch.long))

    has_valid = rows is not None and len(rows["user_id"]) > 0
    if has_valid:  # the frozen CF model's x^u of the validation users: computed once, not per epoch
        valid_users_x = users_of(list(rows["history"]), rows["user_id"])
        valid_cands = torch.as_tensor(rows["candidates"])

    def valid_hit1() -> float | None:
        if not has_valid:
            return None
        with torch.no_grad():
            scores = model.match_scores(valid_users_x, valid_cands)
        return float((scores.argmax(1).numpy() == np.asarray(rows["target_index"])).mean())

    history = []
    was_training = model.training
    model.eval()  # dropout-free projectors as in the LLM steps' frozen modules; the projectors still get gradients
    try:
        for epoch in tqdm(range(epochs), desc="matching", unit="epoch", disable=not progress, leave=False):
            key = MATCH_EPOCH_OFFSET + epoch
            draws = [samples.sample(int(i), key) for i in samples.epoch_order(key)]
            x = users_of([d["history"] for d in draws], [d["user_id"] for d in draws])
            cands = torch.as_tensor(np.stack([d["candidates"] for d in draws]))
            target = torch.tensor([int(np.flatnonzero(d["candidates"] == d["target"])[0]) for d in draws])
            losses = []
            for start in range(0, len(draws), batch_size):
                sl = slice(start, start + batch_size)
                loss = torch.nn.functional.cross_entropy(model.match_scores(x[sl], cands[sl]), target[sl])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "valid_match_hit@1": valid_hit1()})
    finally:
        model.train(was_training)
    if history:
        hit = history[-1]["valid_match_hit@1"]
        logger.info("matching pre-training: %d epochs, loss %.3f%s", epochs, history[-1]["loss"],
                    "" if hit is None else f", token-space validation Hit@1 {hit:.3f} ({len(rows['user_id'])} users)")
    return history


def validation_hit1(model, dataset, users: int, seed: int, progress: bool) -> tuple[float, int]:
    """Rank-mode Hit@1 on a seeded subset of the valid split → ``(hit@1, n_users)``."""
    from ..evaluation.metrics import ranks_from_scores
    from ..training.distributed import is_main_process, shard_and_gather
    from .inference import rank_scores, subset_rows

    rows = subset_rows(dataset.eval_rows("valid"), users, seed)
    if not len(rows["user_id"]):
        return float("nan"), 0
    was_training = model.training
    model.eval()
    try:  # users sharded across processes when distributed; every process gets the same Hit@1
        scores = shard_and_gather(lambda part: rank_scores(model, part, dataset.titles, progress=progress and is_main_process()), rows)
    finally:
        model.train(was_training)
    ranks = ranks_from_scores(scores, rows["target_index"])
    return float((ranks < 1).mean()), len(ranks)


def _save(model, out: Path, log: dict, state_dict=None) -> None:
    with atomic_directory(out, overwrite=True) as tmp:
        model.save_pretrained(tmp, state_dict=state_dict)  # LLM tensors are dropped by save_pretrained
        atomic_write_json(tmp / TRAINING_LOG, log)


def prepare_placed(accelerator, args, model, optimizer, *others):
    """``accelerator.prepare`` that leaves a quantised / device-mapped LLM where ``from_pretrained`` put it."""
    from .llm_loading import place_model

    placed = args.llm_quantization != "none" or bool(args.llm_device_map)
    if not placed:
        return accelerator.prepare(model, optimizer, *others)
    if args.llm_device_map == "auto" and accelerator.num_processes > 1:
        raise AllmrecError("--llm-device-map auto spreads one LLM over all GPUs: run one process (no accelerate launch "
                           "--num_processes N), or use FSDP/DeepSpeed to shard across processes")
    place_model(model, accelerator.device, model.llm)
    return accelerator.prepare(model, optimizer, *others, device_placement=[False] + [None] * (1 + len(others)))


# ---------------------------------------------------------------------------------------------- train
def train_stage2(args: Stage2TrainingArguments) -> dict:
    """Train F_U / F_I; write the best checkpoint to ``args.out``; return the training log.

    The loop itself (distributed / accumulated steps, early stopping, resume) is
    :func:`allmrec.training.prompt_loop.run_prompt_training`, shared with TALLRec.
    """
    import torch

    from ..data.dataset import PreparedDataset
    from ..training.accelerator import build_accelerator

    args.validate()
    timer = StageTimer()
    set_seed(args.seed)
    accelerator = build_accelerator(args.mixed_precision, cpu_bf16=True)  # an LLM step: bf16 is faster on such CPUs
    with timer("load"):
        dataset = PreparedDataset.load(args.data)
        samples = Stage2Samples(dataset, args.num_negatives, args.seed, args.max_train_users, targets=args.targets,
                               only_users=dataset.few_shot_users(args.few_shot) if args.few_shot else None)
        model = build_model(args, dataset, str(accelerator.device))
        match_log: list[dict] = []
        if args.match_pretrain_epochs and not args.resume_from:  # a resumed state already holds trained projectors
            with timer("match_pretrain"):
                match_log = pretrain_matching(model, samples, dataset, args.match_pretrain_epochs, args.lr, args.seed,
                                              valid_users=args.valid_users, progress=args.progress)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    logger.info(
        "stage 2: %d training users (%d skipped: < 2 training items), %s trainable parameters, LLM %s (hidden %d), "
        "%d process(es), precision %s",
        len(samples), samples.skipped, f"{n_trainable:,}", args.llm, model.config.llm_hidden_size,
        accelerator.num_processes, accelerator.mixed_precision,
    )
    logger.info("stage 2 recipe %s: objective %s (%s), targets %s, layout %s, inputs %s, soft-token norm %s, lr %g %s "
                "(warm-up %d), matching loss weight %g (temperature %g, %d pre-training epochs), user-token teacher %g, answers %s, "
                "LLM %s", args.recipe, args.objective,
                args.listwise_normalization, args.targets, args.prompt_layout, args.input_standardization, args.soft_token_norm,
                args.lr, args.lr_schedule, args.warmup_steps, args.match_weight, args.match_temperature, args.match_pretrain_epochs,
                args.user_token_teacher, args.answer_format,
                f"+ LoRA r{args.llm_lora_rank}" if args.llm_lora_rank else "frozen")
    lora = [p for n, p in model.named_parameters() if p.requires_grad and ".lora_" in n]
    lora_ids = {id(p) for p in lora}
    groups = [{"params": [p for p in trainable if id(p) not in lora_ids]}]
    if lora:
        groups.append({"params": lora, "lr": args.lora_lr or args.lr})
        logger.info("LoRA rank %d on %s: %s adapter parameters (lr %g)", args.llm_lora_rank,
                    ",".join(model.config.llm_lora_target_modules), f"{sum(p.numel() for p in lora):,}", args.lora_lr or args.lr)
    optimizer = torch.optim.Adam(groups, lr=args.lr, betas=(args.beta1, args.beta2))
    steps_per_epoch = (len(samples) + args.batch_size - 1) // args.batch_size
    planned = steps_per_epoch * args.epochs if args.max_steps is None else min(args.max_steps, steps_per_epoch * args.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(args.lr_schedule, args.warmup_steps, planned))
    model, optimizer = prepare_placed(accelerator, args, model, optimizer)
    # Not through prepare(): accelerate steps a prepared scheduler once per process per step (it assumes per-process
    # batches), but --batch-size is the global batch here; registered, it is still saved in resumable states.
    accelerator.register_for_checkpointing(scheduler)
    log: dict[str, Any] = {
        "args": asdict(args),
        "training_users": len(samples),
        "skipped_users": samples.skipped,
        "trainable_parameters": n_trainable,
        "mixed_precision": accelerator.mixed_precision,
        "match_pretraining": match_log,
    }
    hooks = PromptLoopHooks(
        name="stage 2",
        collate=collate,
        save_checkpoint=_save,
        validate=lambda core: validation_hit1(core, dataset, args.valid_users, args.seed, args.progress),
    )
    return run_prompt_training(args, accelerator, model, optimizer, samples, log, timer, hooks, scheduler=scheduler)


def lr_multiplier(schedule: str, warmup: int, total: int):
    """``step → factor`` of the base lr: linear warm-up over ``warmup`` steps, then constant or cosine to 10 %."""
    import math

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def arguments_from_namespace(ns) -> Stage2TrainingArguments:
    names = {f.name for f in fields(Stage2TrainingArguments)}
    return Stage2TrainingArguments(**{k: v for k, v in vars(ns).items() if k in names})


__all__ = ["Stage2TrainingArguments", "Stage2Samples", "RECIPES", "lr_multiplier", "training_user_representations", "train_stage2", "pretrain_matching", "read_stage1", "collate", "validation_hit1", "build_model", "arguments_from_namespace", "TRAINING_LOG"]
