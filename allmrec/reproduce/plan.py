"""The plan of ``allmrec reproduce``: every experiment of the paper as steps (one ``allmrec`` command each) and
tables (views over the steps' results files).

A step trains one model or scores one model once; tables share steps (SASRec is trained once and read by Tables 1,
4, 5 and 11). Steps are listed in an order where every step comes after the steps it reads. Paths are relative to
the report folder ``R``: checkpoints under ``R/work/``, results files under ``R/results/``.

Each table row names the results file(s) it reads; :mod:`allmrec.reproduce.report` renders them in the paper's
layout. A table whose experiment cannot run on the given data (no cold users, one dataset for a cross-domain
table, descriptions that are not genres) is planned as *not applicable* with the reason, never filled in.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AllmrecError, DataError
from .budgets import COST, ReproduceBudget

#: the tables (and the figure) ``--tables`` can name, in report order
TABLES = ("1", "4", "5", "6", "7", "8", "9", "10", "11", "fig4", "order")
TABLE_TITLES = {
    "1": "Table 1: overall performance (Hit@1, 20 candidates)",
    "4": "Table 4: cold / warm items (Hit@1)",
    "5": "Table 5: cold users (Hit@1)",
    "6": "Table 6: few-shot training, K users (Hit@1)",
    "7": "Table 7: cross-domain (Hit@1)",
    "8": "Table 8: stage-1 ablations (Hit@1)",
    "9": "Table 9: stage-2 ablations (Hit@1)",
    "10": "Table 10: train / inference time",
    "11": "Table 11: model-agnostic: CF backbones (Hit@1)",
    "fig4": "Figure 4: favourite-genre prediction",
    "order": "Does it use order? Every user's history shuffled at evaluation (Hit@1)",
}
CF_BACKBONES = ("sasrec", "nextitnet", "gru4rec", "ncf")
CF_NAMES = {"sasrec": "SASRec", "nextitnet": "NextItNet", "gru4rec": "GRU4Rec", "ncf": "NCF"}


@dataclass
class Step:
    """One command of the plan."""

    id: str  # unique, also the file-system name of its marker: "train/s2-allmrec", "eval/allmrec.rank"
    kind: str  # train | evaluate | genres
    label: str  # what a reader sees in the progress line
    argv: list[str]  # arguments of `allmrec`
    output: str  # relative to R: the checkpoint directory (train) or results file (evaluate, genres)
    needs: list[str] = field(default_factory=list)
    estimate_s: float = 0.0
    #: the ``COST`` unit the estimate is made of ("stage2_step_index", "rank_user", ...): the runner rescales a
    #: step's estimate by the measured / estimated ratio of the finished steps of the same rate, because machines
    #: differ in what they are slow at (one ran the paper recipe's token loss at 3.8x its estimate, index-lora at 1.4x)
    rate: str = ""

    def resolved_argv(self, root: str | Path) -> list[str]:
        """``argv`` with the report folder ``root`` in place of ``{R}``."""
        return [a.replace("{R}", str(root)) for a in self.argv]

    def command(self, root: str | Path) -> str:
        """The shell command as a reader would type it (paths under ``root``)."""
        import shlex

        return "allmrec " + " ".join(shlex.quote(a) for a in self.resolved_argv(root))


@dataclass
class Row:
    label: str
    results: dict[str, str]  # column → step id of an evaluate step (or a train step for Table 10)


@dataclass
class TableSpec:
    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    not_applicable: str | None = None  # the reason, when the experiment cannot run on this data
    note: str = ""
    baseline: str | None = None  # row label every other row is compared with (paired bootstrap)


@dataclass
class Plan:
    data: str
    budget: ReproduceBudget
    llm: str
    sbert: str
    seed: int
    steps: list[Step]
    tables: list[TableSpec]
    cross_domain: str | None = None

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def readers(self, step_id: str) -> list[Step]:
        """The steps that read ``step_id``'s output (computed once per plan)."""
        if getattr(self, "_readers", None) is None:
            self._readers = readers_map(self.steps)
        return self._readers[step_id]

    def estimate_s(self) -> float:
        return sum(s.estimate_s for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "budget": asdict(self.budget), "llm": self.llm, "sbert": self.sbert, "seed": self.seed,
                "cross_domain": self.cross_domain, "steps": [asdict(s) for s in self.steps],
                "tables": [asdict(t) for t in self.tables]}


class _Builder:
    """Accumulates steps once each (by id) while the tables are planned."""

    def __init__(self, data: str, budget: ReproduceBudget, llm: str, sbert: str, seed: int) -> None:
        self.data, self.b, self.llm, self.sbert, self.seed = data, budget, llm, sbert, str(seed)
        self.steps: dict[str, Step] = {}

    def add(self, step: Step) -> str:
        if step.id not in self.steps:
            self.steps[step.id] = step
        return step.id

    # ------------------------------------------------------------------ training steps
    def cf(self, model: str = "sasrec", loss: str = "bce", few_shot: int | None = None) -> str:
        name = f"cf-{model}" + ("-ce" if loss == "ce" else "") + (f"-k{few_shot}" if few_shot else "")
        argv = ["train", "cf", "--data", self.data, "--model", model, "--out", f"{{R}}/work/{name}",
                "--epochs", str(self.b.cf_epochs), "--seed", self.seed, "--no-progress"]
        if loss != "bce":
            argv += ["--loss", loss]
        if few_shot:
            argv += ["--few-shot", str(few_shot)]
        return self.add(Step(f"train/{name}", "train", f"train {CF_NAMES[model]} ({loss}{f', K={few_shot}' if few_shot else ''})",
                             argv, f"work/{name}", estimate_s=COST["process"] + COST["cf_epoch"] * self.b.cf_epochs,
                             rate="cf_epoch"))

    def stage1(self, cf: str, suffix: str = "", flags: tuple[str, ...] = (), few_shot: int | None = None) -> str:
        cf_name = self.steps[cf].output.split("/")[-1][3:]
        name = f"s1-{cf_name}{suffix}"
        argv = ["train", "stage1", "--data", self.data, "--cf", f"{{R}}/{self.steps[cf].output}",
                "--out", f"{{R}}/work/{name}", "--sbert", self.sbert, "--epochs", str(self.b.stage1_epochs),
                "--seed", self.seed, "--no-progress", *flags]
        if self.b.stage1_sbert_layers and "--freeze-sbert" not in flags:
            argv += ["--sbert-train-layers", str(self.b.stage1_sbert_layers)]
        if few_shot:
            argv += ["--few-shot", str(few_shot)]
        rate = "stage1_all_items_epoch" if "--all-items" in flags else "stage1_epoch"
        return self.add(Step(f"train/{name}", "train", f"stage 1 on {cf_name}{suffix}", argv, f"work/{name}", [cf],
                             COST["process"] + COST[rate] * self.b.stage1_epochs, rate))

    def _stage2_budget(self, steps: int, epochs: int) -> list[str]:
        out = ["--max-steps", str(steps)] if steps else ["--epochs", str(epochs)]
        if not steps or steps >= 40:  # long enough to be worth resuming: a killed step goes on from its last state
            out += ["--save-state-every", "20"]
        every = ["--eval-every", str(self.b.eval_every)] if self.b.valid_users and self.b.eval_every else []
        return out + ["--valid-users", str(self.b.valid_users), *every, "--seed", self.seed, "--no-progress"]

    def _stage2_cost(self, argv: list[str]) -> tuple[float, str]:
        """(estimate, rate) of a stage-2 / MLP-LLM training: its recipe decides the cost of a step."""
        steps = self.b.stage2_steps or 236 * self.b.stage2_epochs  # ml-100k: 943 users / 4 per step
        recipe = recipe_of(argv)
        rate = "stage2_step_index" if recipe == "index-lora" else "stage2_step_token" if recipe == "paper" else "stage2_step"
        return COST["process"] + COST["stage2_match_pretrain"] + COST[rate] * steps, rate

    def stage2(self, s1: str, suffix: str = "", flags: tuple[str, ...] = (), few_shot: int | None = None) -> str:
        s1_name = self.steps[s1].output.split("/")[-1][3:]
        name = f"s2-{s1_name}{suffix}"
        recipe = () if "--recipe" in flags else ("--recipe", self.b.stage2_recipe)  # a row's own recipe wins (paper)
        argv = ["train", "stage2", "--data", self.data, "--stage1", f"{{R}}/{self.steps[s1].output}", "--llm", self.llm,
                "--out", f"{{R}}/work/{name}", *self._stage2_budget(self.b.stage2_steps, self.b.stage2_epochs),
                *recipe, *flags]
        if few_shot:
            argv += ["--few-shot", str(few_shot)]
        return self.add(Step(f"train/{name}", "train", f"stage 2 on {s1_name}{suffix}", argv, f"work/{name}", [s1],
                             *self._stage2_cost(argv)))

    def mlpllm(self, cf: str) -> str:
        # the same recipe and budget as the A-LLMRec row: the two differ only in what F_U / F_I read
        argv = ["train", "mlpllm", "--data", self.data, "--cf-model", f"{{R}}/{self.steps[cf].output}", "--llm", self.llm,
                "--out", "{R}/work/mlpllm", *self._stage2_budget(self.b.stage2_steps, self.b.stage2_epochs),
                "--recipe", self.b.stage2_recipe]
        return self.add(Step("train/mlpllm", "train", "MLP-LLM (stage 2 on raw CF embeddings)", argv, "work/mlpllm", [cf],
                             *self._stage2_cost(argv)))

    def tallrec(self, few_shot: int | None = None) -> str:
        name = "tallrec" + (f"-k{few_shot}" if few_shot else "")
        argv = ["train", "tallrec", "--data", self.data, "--llm", self.llm, "--out", f"{{R}}/work/{name}",
                *self._stage2_budget(self.b.tallrec_steps, self.b.tallrec_epochs)]
        if few_shot:
            argv += ["--few-shot", str(few_shot)]
        steps = self.b.tallrec_steps or 236 * self.b.tallrec_epochs
        return self.add(Step(f"train/{name}", "train", f"TALLRec (LoRA){f' K={few_shot}' if few_shot else ''}", argv,
                             f"work/{name}", estimate_s=COST["process"] + COST["tallrec_step"] * steps, rate="tallrec_step"))

    # ------------------------------------------------------------------ scoring steps
    def evaluate(self, model: str, mode: str = "rank", split: str = "test", item_embedding: str | None = None,
                 data: str | None = None, tag: str = "", ablate: str | None = None) -> str:
        """Score a trained model (a train step id), ``llm:NAME`` or ``pop`` (MostPop: nothing to train)."""
        is_llm, is_pop = model.startswith("llm:"), model == "pop"
        untrained = is_llm or is_pop
        name = ("llm-only" if is_llm else "mostpop" if is_pop else self.steps[model].output.split("/")[-1]) + tag
        name += f".{mode}" + (f".{item_embedding}" if item_embedding else "") + ("" if split == "test" else f".{split}")
        name += f".{ablate}" if ablate else ""
        argv = ["evaluate", "--model", model if untrained else f"{{R}}/{self.steps[model].output}",
                "--data", data or self.data, "--split", split, "--out", f"{{R}}/results/{name}.json"]
        cf = is_pop or (not is_llm and self.steps[model].argv[1] == "cf")
        if not cf:
            argv += ["--mode", mode]
            if mode == "generate":
                argv.append("--stop-at-answer")  # exact Hit@1 unchanged; an untrained model would decode 64 tokens
        if item_embedding:
            argv += ["--item-embedding", item_embedding]
        if data and data != self.data:
            argv.append("--cross-domain")
        if ablate:
            argv += ["--ablate", ablate]
        if self.b.eval_users:
            argv += ["--max-users", str(self.b.eval_users), "--subset-seed", "0"]
        users = self.b.eval_users or 943
        index = not untrained and not cf and recipe_of(self.steps[model].argv) == "index-lora"
        # one-label answers cost one forward pass per user, title answers 20 packed ones: two rates, not one
        rate = "cf_eval" if cf else f"{mode}_user" + ("_index" if index else "")  # rank_user[_index], generate_user[_index]
        per_user = COST["cf_eval"] / users if cf else COST[rate]
        return self.add(Step(f"eval/{name}", "evaluate", f"score {name}", argv, f"results/{name}.json",
                             [] if untrained else [model], COST["process"] + per_user * users, rate))

    def genres(self, model: str) -> str:
        is_llm = model.startswith("llm:")
        name = ("llm-only" if is_llm else self.steps[model].output.split("/")[-1]) + ".genres"
        argv = ["genres", "--model", model if is_llm else f"{{R}}/{self.steps[model].output}", "--data", self.data,
                "--out", f"{{R}}/results/{name}.json"]
        if self.b.genre_users:
            argv += ["--max-users", str(self.b.genre_users)]
        users = self.b.genre_users or 943
        return self.add(Step(f"genres/{name}", "genres", f"genre question to {name[:-7]}", argv, f"results/{name}.json",
                             [] if is_llm else [model], COST["process"] + COST["genre_user"] * users, "genre_user"))


def recipe_of(argv: list[str]) -> str | None:
    """The stage-2 recipe a training command runs (its last ``--recipe``, as argparse reads it)."""
    values = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--recipe"]
    return values[-1] if values else None


def _manifest(data: str) -> dict[str, Any]:
    path = Path(data) / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} is missing: --data must be a prepared dataset (allmrec data prepare)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is corrupt ({e}); prepare the dataset again") from None


def _genres_applicable(data: str) -> str | None:
    """None when the items' descriptions are genre labels, else why Figure 4 cannot be scored."""
    from ..evaluation.genres import check_genre_labels, item_genres

    texts = []
    with open(Path(data) / "items.jsonl", encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line).get("text", ""))
    try:
        check_genre_labels(item_genres([""] + texts), data)
    except DataError as e:
        return str(e)
    return None


def build_plan(data: str, budget: ReproduceBudget, tables: tuple[str, ...] = TABLES, llm: str = "smollm2-135m-instruct",
               sbert: str = "all-minilm-l6-v2", seed: int = 0, cross_domain: str | None = None) -> Plan:
    """Every step and table for ``tables`` on the prepared dataset ``data`` (see the module docstring)."""
    unknown = [t for t in tables if t not in TABLES]
    if unknown:
        raise AllmrecError(f"--tables: unknown {', '.join(unknown)}; choose from {', '.join(TABLES)}")
    manifest = _manifest(data)
    counts = manifest.get("counts", {})
    b = _Builder(data, budget, llm, sbert, seed)
    specs: list[TableSpec] = []
    modes = ("rank", "generate") if budget.generate else ("rank",)

    # the main pipeline: SASRec → stage 1 → stage 2 (default recipe), shared by most tables
    sasrec = b.cf("sasrec")
    s1 = b.stage1(sasrec)
    allmrec = b.stage2(s1)

    def cols(model: str, llm_model: bool = True, **kw) -> dict[str, str]:
        out = {"rank": b.evaluate(model, "rank", **kw)}
        if llm_model and "generate" in modes:
            out["generate"] = b.evaluate(model, "generate", **kw)
        return out

    table1_models: list[tuple[str, str, dict]] = []  # (label, train step or llm:, evaluate kwargs)
    if any(t in tables for t in ("1", "4", "5", "10")):
        table1_models += [("MostPop", "pop", {}), ("SASRec", sasrec, {}), ("SASRec (CE)", b.cf("sasrec", "ce"), {}),
                          ("LLM-Only", f"llm:{llm}", {}), ("TALLRec", b.tallrec(), {}), ("MLP-LLM", b.mlpllm(sasrec), {}),
                          ("A-LLMRec (paper recipe)", b.stage2(s1, "-paper", ("--recipe", "paper")), {}),
                          ("A-LLMRec", allmrec, {}), ("A-LLMRec (SBERT)", allmrec, {"item_embedding": "text"})]
        if budget.all_targets:
            s1_all = b.stage1(sasrec, "-all", ("--all-items",))
            table1_models.append(("A-LLMRec_all", b.stage2(s1_all, "", ("--recipe", "paper", "--targets", "all")), {}))
        if budget.lora_rank:
            table1_models.append(("A-LLMRec + LoRA", b.stage2(s1, "-lora", ("--llm-lora-rank", str(budget.lora_rank),
                                                                            "--lora-lr", "6e-4")), {}))
    if "1" in tables:
        t = TableSpec("1", TABLE_TITLES["1"], baseline="A-LLMRec",
                      note="rank: likelihood ranking of the 20 candidates; generate: greedy answer, exact title match.")
        for backbone in CF_BACKBONES[1:]:
            t.rows.append(Row(CF_NAMES[backbone], cols(b.cf(backbone), False)))
        for label, model, kw in table1_models:
            cf_model = model == "pop" or (not model.startswith("llm:") and b.steps[model].argv[1] == "cf")
            t.rows.append(Row(label, cols(model, not cf_model, **kw)))
        specs.append(t)
    if "4" in tables:
        t = TableSpec("4", TABLE_TITLES["4"], baseline="A-LLMRec",
                      note="the rank-mode results of Table 1 split by the target item's training popularity.")
        t.rows = [Row(label, {"rank": b.evaluate(model, "rank", **kw)}) for label, model, kw in table1_models]
        specs.append(t)
    if "5" in tables:
        t = TableSpec("5", TABLE_TITLES["5"], baseline="A-LLMRec")
        if not counts.get("cold_users"):
            t.not_applicable = (f"{manifest.get('name', data)} has no cold user (no user with exactly "
                                f"{manifest.get('options', {}).get('cold_user_len', 3)} interactions)")
        else:
            t.rows = [Row(label, {"rank": b.evaluate(model, "rank", split="cold_user_test", **kw)})
                      for label, model, kw in table1_models if label not in ("SASRec (CE)", "A-LLMRec_all")]
        specs.append(t)
    if "6" in tables:
        t = TableSpec("6", TABLE_TITLES["6"],
                      note="every model (the CF model and stage 1 included) trained on the prepared K-user subset only.")
        sizes = manifest.get("options", {}).get("few_shot") or []
        if not sizes:
            t.not_applicable = "the dataset was prepared without few-shot subsets (allmrec data prepare --few-shot)"
        for k in sorted(sizes, reverse=True):
            cf_k = b.cf("sasrec", few_shot=k)
            s2_k = b.stage2(b.stage1(cf_k, few_shot=k), few_shot=k)
            t.rows += [Row(f"K={k} SASRec", {"rank": b.evaluate(cf_k, "rank")}),
                       Row(f"K={k} TALLRec", {"rank": b.evaluate(b.tallrec(few_shot=k), "rank")}),
                       Row(f"K={k} A-LLMRec", {"rank": b.evaluate(s2_k, "rank")}),
                       Row(f"K={k} A-LLMRec (SBERT)", {"rank": b.evaluate(s2_k, "rank", item_embedding="text")})]
        specs.append(t)
    if "7" in tables:
        t = TableSpec("7", TABLE_TITLES["7"])
        if not cross_domain:
            t.not_applicable = ("one dataset given: a cross-domain table needs models trained here and evaluated on a "
                                "second prepared dataset (--cross-domain D2)")
        else:
            _manifest(cross_domain)
            tallrec = b.tallrec()
            t.rows = [Row("LLM-Only", {"rank": b.evaluate(f"llm:{llm}", "rank", data=cross_domain, tag="@cross")}),
                      Row("TALLRec", {"rank": b.evaluate(tallrec, "rank", data=cross_domain, tag="@cross")}),
                      Row("A-LLMRec", {"rank": b.evaluate(allmrec, "rank", data=cross_domain, tag="@cross")}),
                      Row("A-LLMRec (SBERT)", {"rank": b.evaluate(allmrec, "rank", item_embedding="text",
                                                                  data=cross_domain, tag="@cross")})]
            t.note = ("text-only models read titles only and transfer as they are. A-LLMRec reaches the foreign items "
                      "through the text path: q_i = f_T^enc(SBERT(text)) for F_I (SBERT row) or f_I^enc(f_I^dec(q_i)) "
                      "(A-LLMRec row), and the frozen CF model reads foreign histories through the decoded rows "
                      "f_I^dec(q_i) (allmrec.model.cross_domain).")
        specs.append(t)
    if "8" in tables:
        t = TableSpec("8", TABLE_TITLES["8"], baseline="A-LLMRec")
        t.rows.append(Row("A-LLMRec", {"rank": b.evaluate(allmrec, "rank")}))
        for label, suffix, flags in (("w/o L_matching", "-nomatch", ("--no-match",)),
                                     ("w/o L_item-recon & L_text-recon", "-norecon", ("--no-item-recon", "--no-text-recon")),
                                     ("w/o L_rec", "-norec", ("--no-rec",)),
                                     ("Freeze SBERT", "-frozen", ("--freeze-sbert",))):
            t.rows.append(Row(label, {"rank": b.evaluate(b.stage2(b.stage1(sasrec, suffix, flags)), "rank")}))
        specs.append(t)
    if "9" in tables:
        t = TableSpec("9", TABLE_TITLES["9"], baseline="A-LLMRec")
        t.rows = [Row("A-LLMRec", {"rank": b.evaluate(allmrec, "rank")}),
                  Row("w/o user representation", {"rank": b.evaluate(b.stage2(s1, "-nouser", ("--soft-tokens", "items")), "rank")}),
                  Row("w/o joint embedding", {"rank": b.evaluate(b.stage2(s1, "-noitem", ("--soft-tokens", "user")), "rank")}),
                  Row("with random joint embedding", {"rank": b.evaluate(b.stage2(s1, "-random", ("--item-table", "random")), "rank")})]
        specs.append(t)
    if "10" in tables:
        t = TableSpec("10", TABLE_TITLES["10"],
                      note="train: seconds per step of 4 users and minutes per epoch over every training user (steps × "
                           "s/step); inference: seconds per batch of 4 users in rank mode; same LLM.")
        for label, model, _ in table1_models:
            if label in ("TALLRec", "A-LLMRec", "A-LLMRec_all", "A-LLMRec + LoRA"):
                t.rows.append(Row(label, {"train": model, "rank": b.evaluate(model, "rank")}))
        specs.append(t)
    if "11" in tables:
        t = TableSpec("11", TABLE_TITLES["11"])
        for backbone in CF_BACKBONES:
            cf = b.cf(backbone)
            name = CF_NAMES[backbone]
            s2 = allmrec if backbone == "sasrec" else b.stage2(b.stage1(cf))
            t.rows += [Row(name, {"rank": b.evaluate(cf, "rank")}), Row(f"A-LLMRec ({name})", {"rank": b.evaluate(s2, "rank")})]
        specs.append(t)
    if "fig4" in tables:
        t = TableSpec("fig4", TABLE_TITLES["fig4"],
                      note="the answer's first 3 genre labels against the user's 3 most-watched genres (item labels).")
        reason = _genres_applicable(data)
        if reason:
            t.not_applicable = reason
        else:
            t.rows = [Row("LLM-Only", {"genres": b.genres(f"llm:{llm}")}), Row("A-LLMRec", {"genres": b.genres(allmrec)})]
            if budget.stage2_recipe != "paper":
                # the paper asks a frozen LLM (§5.4.4); a recipe that trains LoRA for one-label answers (index-lora)
                # may lose free-text answers, so the paper-recipe model (frozen LLM) is asked as well
                paper = b.stage2(s1, "-paper", ("--recipe", "paper"))
                t.rows.append(Row("A-LLMRec (paper recipe)", {"genres": b.genres(paper)}))
                t.note += (f" A-LLMRec is the {budget.stage2_recipe} model of Table 1; the paper-recipe model keeps the "
                           "LLM frozen, as the paper does.")
        specs.append(t)
    if "order" in tables:
        t = TableSpec("order", TABLE_TITLES["order"],
                      note="each model scored twice on the same users and candidates: as is, and with every user's "
                           "history in a seeded random order (allmrec evaluate --ablate shuffle-history: the prompt and "
                           "the CF input alike). A model that reads order loses Hit@1; one that does not scores the same.")
        for label, model in (("SASRec", sasrec), ("GRU4Rec", b.cf("gru4rec")), ("MLP-LLM", b.mlpllm(sasrec)),
                             ("A-LLMRec", allmrec)):
            t.rows.append(Row(label, {"rank": b.evaluate(model, "rank"),
                                      "shuffled": b.evaluate(model, "rank", ablate="shuffle-history")}))
        specs.append(t)
    return Plan(data, budget, llm, sbert, seed, _readers_first(list(b.steps.values())), specs, cross_domain)


def readers_map(steps: list[Step]) -> dict[str, list[Step]]:
    """Step id → the steps that read its output (its ``needs`` reversed), in plan order."""
    readers: dict[str, list[Step]] = {s.id: [] for s in steps}
    for s in steps:
        for d in s.needs:
            readers[d].append(s)
    return readers


def _readers_first(steps: list[Step]) -> list[Step]:
    """Depth-first order: each step is followed at once by the steps that read it (a model by its scoring cells).

    A training's checkpoint is then needed only for a short stretch of the run, so a run spread over several
    machines or job windows that keeps only ``R/done/`` and ``R/results/`` (not ``R/work/``) retrains little.
    """
    readers = readers_map(steps)
    order: list[Step] = []
    placed: set[str] = set()

    def place(step: Step) -> None:
        order.append(step)
        placed.add(step.id)
        for r in readers[step.id]:
            if r.id not in placed and all(d in placed for d in r.needs):
                place(r)

    for s in steps:
        if s.id not in placed and all(d in placed for d in s.needs):
            place(s)
    assert len(order) == len(steps), "the plan's steps do not form a dependency order"
    return order


__all__ = ["Step", "Row", "TableSpec", "Plan", "build_plan", "TABLES", "TABLE_TITLES", "CF_BACKBONES"]
