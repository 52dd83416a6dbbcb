"""``R/report.md`` and a self-contained ``R/report.html`` from a reproduce folder's results.

Every Hit@k / NDCG / genre cell is ``mean ± half-width`` of its 95 % bootstrap interval over users (1,000 seeded
resamples, :mod:`allmrec.evaluation.statistics`); the best value of each column is bold; each table with a
reference row gets a column "Δ vs <reference>": the paired-bootstrap difference on the same users and candidates.
Where the dataset is one of the paper's, the paper's Hit@1 sits beside ours. A cell whose step has not run shows
"—"; a table that cannot run on this data says why. Under each table: the exact command of every cell.
"""

from __future__ import annotations

import base64
import html
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.statistics import bootstrap_interval, paired_results_difference
from .plan import Plan, Step, TableSpec
from .runner import checkpoint_training_log, is_done, machine, marker_path, training_log_copy

#: the paper's Hit@1 (Tables 1, 4-6, 8, 9, 11) for the datasets it used; keys: normalised dataset names
PAPER_TABLE1 = {
    "movies_and_tv": {"NCF": 0.4273, "NextItNet": 0.5855, "GRU4Rec": 0.5215, "SASRec": 0.6154, "LLM-Only": 0.0121,
                      "TALLRec": 0.2345, "MLP-LLM": 0.5838, "A-LLMRec": 0.6237},
    "video_games": {"NCF": 0.3159, "NextItNet": 0.4305, "GRU4Rec": 0.4026, "SASRec": 0.5402, "LLM-Only": 0.0168,
                    "TALLRec": 0.4403, "MLP-LLM": 0.4788, "A-LLMRec": 0.5282},
    "beauty": {"NCF": 0.2957, "NextItNet": 0.4231, "GRU4Rec": 0.4131, "SASRec": 0.5298, "LLM-Only": 0.0120,
               "TALLRec": 0.5542, "MLP-LLM": 0.5548, "A-LLMRec": 0.5809, "A-LLMRec_all": 0.6002},
    "toys": {"NCF": 0.1849, "NextItNet": 0.1415, "GRU4Rec": 0.1673, "SASRec": 0.2359, "LLM-Only": 0.0141,
             "TALLRec": 0.0710, "MLP-LLM": 0.3225, "A-LLMRec": 0.3336},
}
PAPER_DATASETS = {"movies_and_tv": "Movies and TV", "video_games": "Video Games", "beauty": "Beauty", "toys": "Toys"}


def _paper_key(name: str | None) -> str | None:
    key = (name or "").lower().replace("-", "_").replace(" ", "_").replace("&", "and")
    for k in PAPER_TABLE1:
        if key == k or key.endswith(k) or (k == "toys" and "toys" in key):
            return k
    return None


def _load(root: Path, plan: Plan, step_id: str) -> dict | None:
    step = plan.step(step_id)
    if not is_done(root, step, plan):
        return None
    path = root / step.output
    if step.kind == "train":  # the checkpoint's log, or the runner's copy once R/work/ is gone
        path = checkpoint_training_log(path) or training_log_copy(root, step)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _cell(r: dict | None, metric: str = "hit@1", scenario: str | None = None) -> tuple[float | None, float | None]:
    """(mean, half-width of the 95 % interval) of ``metric`` overall or within ``scenario``."""
    if r is None:
        return None, None
    if scenario is None:
        value = r.get("metrics", {}).get(metric)
        lo, hi = (r.get("intervals") or {}).get(metric, (None, None))
        return value, (None if lo is None or value is None else (hi - lo) / 2)
    pu = r.get("per_user") or {}
    if metric not in pu or "scenario" not in pu:
        sc = (r.get("scenarios") or {}).get(scenario) or {}
        return (sc.get("metrics") or {}).get(metric), None
    values = np.asarray(pu[metric], dtype=np.float64)[np.asarray(pu["scenario"]) == scenario]
    if not values.size:
        return None, None
    lo, hi = bootstrap_interval(values)
    return float(values.mean()), (hi - lo) / 2


def _fmt(value: float | None, half: float | None = None, bold: bool = False, digits: int = 3) -> str:
    if value is None:
        return "—"
    text = f"{value:.{digits}f}" + (f" ± {half:.{digits}f}" if half is not None else "")
    return f"**{text}**" if bold else text


class _Grid:
    """A table as header + rows of (text, numeric value or None), so both renderers and bolding share it."""

    def __init__(self, header: list[str]) -> None:
        self.header, self.rows = header, []

    def add(self, cells: list[tuple[str, float | None]]) -> None:
        self.rows.append(cells)

    def bold_best(self, columns: list[int], lower_is_better: bool = False) -> None:
        for c in columns:
            values = [r[c][1] for r in self.rows if r[c][1] is not None]
            if len(values) < 2:
                continue
            best = min(values) if lower_is_better else max(values)
            for r in self.rows:
                if r[c][1] == best and not r[c][0].startswith("**"):
                    r[c] = (f"**{r[c][0]}**", r[c][1])

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(text for text, _ in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def html(self) -> str:
        def cell(text: str, tag: str) -> str:
            inner = html.escape(text.strip("*"))
            return f"<{tag}>" + (f"<b>{inner}</b>" if text.startswith("**") else inner) + f"</{tag}>"

        head = "".join(cell(h, "th") for h in self.header)
        body = "".join("<tr>" + "".join(cell(t, "td") for t, _ in row) + "</tr>" for row in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _delta(r: dict | None, ref: dict | None, metric: str = "hit@1", is_ref: bool = False) -> tuple[str, float | None]:
    if is_ref:
        return "reference", None
    if r is None or ref is None:
        return "—", None
    try:
        d = paired_results_difference(r, ref, metric)
    except ValueError:
        return "n/a", None
    return f"{d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]", None


def table_grid(spec: TableSpec, plan: Plan, root: Path) -> _Grid | None:
    """The rendered grid of one table (None when not applicable)."""
    if spec.not_applicable:
        return None
    load = lambda sid: _load(root, plan, sid)  # noqa: E731
    ref_row = next((row for row in spec.rows if row.label == spec.baseline), None)
    ref_id = ref_row.results.get("rank") if ref_row else None
    ref = load(ref_id) if ref_id else None
    paper = PAPER_TABLE1.get(_paper_key(_dataset_name(plan)) or "", {})
    if spec.key in ("1", "5", "6", "7", "8", "9", "11"):
        gen = any("generate" in row.results for row in spec.rows)
        header = ["model", "users", "Hit@1 (rank)", "NDCG@10 (rank)"]
        if gen:
            header += ["Hit@1 (generate)", "valid answers"]
        if spec.baseline:
            header.append(f"Δ Hit@1 vs {spec.baseline} [95% CI]")
        if spec.key == "1" and paper:
            header.append("paper Hit@1")
        grid = _Grid(header)
        for row in spec.rows:
            r = load(row.results["rank"])
            cells = [(row.label, None), (str(r["n_users"]) if r else "—", None)]
            v, h = _cell(r)
            cells.append((_fmt(v, h), v))
            v, h = _cell(r, "ndcg@10")
            cells.append((_fmt(v, h), v))
            if gen:
                g = load(row.results["generate"]) if "generate" in row.results else None
                v, h = _cell(g)
                cells.append((_fmt(v, h), v))
                v = (g or {}).get("metrics", {}).get("valid_rate")
                cells.append((_fmt(v), v))
            if spec.baseline:
                cells.append(_delta(r, ref, is_ref=row.results["rank"] == ref_id))
            if spec.key == "1" and paper:
                p = paper.get(row.label) or (paper.get("A-LLMRec") if row.label == "A-LLMRec (paper recipe)" else None)
                cells.append((_fmt(p, digits=4), None))
            grid.add(cells)
        grid.bold_best([2, 3] + ([4, 5] if gen else []))
        return grid
    if spec.key == "order":
        grid = _Grid(["model", "users", "Hit@1 (history as is)", "Hit@1 (history shuffled)",
                      "Δ shuffled − as is [95% CI]"])
        for row in spec.rows:
            r, sh = load(row.results["rank"]), load(row.results["shuffled"])
            v, h = _cell(r)
            vs, hs = _cell(sh)
            grid.add([(row.label, None), (str(r["n_users"]) if r else "—", None), (_fmt(v, h), v), (_fmt(vs, hs), vs),
                      _delta(sh, r)])
        return grid
    if spec.key == "4":
        grid = _Grid(["model", "cold items", "mid", "warm items", "all"])
        for row in spec.rows:
            r = load(row.results["rank"])
            cells = [(row.label, None)]
            for sc in ("cold", "mid", "warm", None):
                v, h = _cell(r, scenario=sc)
                cells.append((_fmt(v, h), v))
            grid.add(cells)
        grid.bold_best([1, 2, 3, 4])
        return grid
    if spec.key == "10":
        grid = _Grid(["model", "train s/step (4 users)", "train min/epoch", "train total (min)", "inference s/batch of 4",
                      "Hit@1 (rank)"])
        for row in spec.rows:
            log, r = load(row.results["train"]), load(row.results["rank"])
            sps = (log or {}).get("seconds_per_step")
            per_epoch = sps * log.get("steps_per_epoch", 0) / 60 if sps and log.get("steps_per_epoch") else None
            total = ((log or {}).get("timings") or {}).get("train")
            infer = None
            if r and r.get("n_users"):
                infer = (r.get("timings") or {}).get("rank", 0) / (r["n_users"] / 4)
            v, h = _cell(r)
            grid.add([(row.label, None), (_fmt(sps, digits=2), sps), (_fmt(per_epoch, digits=1), per_epoch),
                      (_fmt(total / 60 if total else None, digits=1), None), (_fmt(infer, digits=2), infer),
                      (_fmt(v, h), v)])
        grid.bold_best([1, 2, 4], lower_is_better=True)
        grid.bold_best([5])
        return grid
    if spec.key == "fig4":
        grid = _Grid(["model", "users", "precision@3", "recall@3", "names a real genre"])
        for row in spec.rows:
            r = load(row.results["genres"])
            cells = [(row.label, None), (str(r["n_users"]) if r else "—", None)]
            for m in ("precision@3", "recall@3", "valid"):
                v, h = _cell(r, m)
                cells.append((_fmt(v, h), v))
            grid.add(cells)
        grid.bold_best([2, 3, 4])
        return grid
    raise ValueError(f"no layout for table {spec.key}")


def _dataset_name(plan: Plan) -> str | None:
    try:
        return json.loads((Path(plan.data) / "manifest.json").read_text(encoding="utf-8")).get("name")
    except (OSError, json.JSONDecodeError):
        return None


def _commands(spec: TableSpec, plan: Plan, root: Path) -> list[str]:
    ids: list[str] = []
    for row in spec.rows:
        for sid in row.results.values():
            stack = [sid]
            while stack:  # the cell's own command and every training it reads
                s = plan.step(stack.pop())
                if s.id not in ids:
                    ids.append(s.id)
                stack.extend(s.needs)
    order = {s.id: k for k, s in enumerate(plan.steps)}
    return [plan.step(i).command(root) for i in sorted(ids, key=order.get)]


# ---------------------------------------------------------------------------------------------- charts
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def chart_cold_warm(plan: Plan, root: Path, path: Path) -> Path | None:
    """Figure 1-style bars: Hit@1 on cold / warm items and overall per model, with 95 % error bars."""
    spec = next((t for t in plan.tables if t.key == "4" and not t.not_applicable), None)
    if spec is None:
        return None
    results = [(row.label, _load(root, plan, row.results["rank"])) for row in spec.rows]
    results = [(label, r) for label, r in results if r]
    if not results:
        return None
    plt = _plt()
    groups = [("cold items", "cold"), ("warm items", "warm"), ("all", None)]
    fig, ax = plt.subplots(figsize=(10, 4.2))
    width = 0.8 / len(results)
    for k, (label, r) in enumerate(results):
        vals, errs = zip(*[_cell(r, scenario=sc) for _, sc in groups])
        ax.bar([g + k * width for g in range(len(groups))], [v or 0 for v in vals], width,
               yerr=[e or 0 for e in errs], capsize=2, label=label)
    ax.set_xticks([g + width * (len(results) - 1) / 2 for g in range(len(groups))], [g for g, _ in groups])
    ax.axhline(0.05, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("Hit@1 (20 candidates)")
    ax.set_title(f"{_dataset_name(plan)}: Hit@1 on cold / warm items (95% bootstrap intervals; dashed: chance)")
    ax.legend(fontsize=7, ncol=3)
    return _save(plt, fig, path)


def chart_learning(plan: Plan, root: Path, path: Path) -> Path | None:
    """Stage-2 / TALLRec training loss against step for every trained LLM model of the plan."""
    curves = []
    for s in plan.steps:
        if s.kind == "train" and s.argv[1] in ("stage2", "mlpllm", "tallrec"):
            log = _load(root, plan, s.id)
            if log and log.get("losses"):
                curves.append((s.output.split("/")[-1], [e["step"] for e in log["losses"]], [e["loss"] for e in log["losses"]]))
    if not curves:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    for name, x, y in curves:
        window = max(1, len(y) // 10)
        smooth = np.convolve(y, np.ones(window) / window, mode="valid")
        ax.plot(x[window - 1:], smooth, label=name, lw=1.2)
    ax.set_xlabel("step (4 users each)")
    ax.set_ylabel("training loss (moving average)")
    ax.set_title("Learning curves of the LLM-based models")
    ax.legend(fontsize=7, ncol=2)
    return _save(plt, fig, path)


def chart_efficiency(plan: Plan, root: Path, path: Path) -> Path | None:
    spec = next((t for t in plan.tables if t.key == "10"), None)
    grid = table_grid(spec, plan, root) if spec else None
    if grid is None or not grid.rows:
        return None
    rows = [(r[0][0], r[1][1], r[4][1]) for r in grid.rows if r[1][1] is not None or r[4][1] is not None]
    if not rows:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, k, title in ((axes[0], 1, "training: s per step of 4 users"), (axes[1], 2, "inference: s per batch of 4 (rank)")):
        ax.barh([r[0] for r in rows], [r[k] or 0 for r in rows], color="#4c72b0")
        ax.set_title(title, fontsize=9)
    return _save(plt, fig, path)


# ---------------------------------------------------------------------------------------------- provenance
def software_versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in ("allmrec", "torch", "transformers", "peft", "accelerate", "datasets", "sentence-transformers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def machines_line(plan: Plan, root: Path) -> str:
    """Which machines ran the finished steps (from their markers): a folder filled over several runs may hold
    timings of different CPUs, and Table 10's seconds are only comparable within one."""
    by_machine: dict[str, list[str]] = {}
    for s in plan.steps:
        name = _marker_machine(root, s)
        if name is not None:
            by_machine.setdefault(name, []).append(s.id)
    if not by_machine:
        return f"- machine: {machine()} (this run; no step finished yet)"
    if len(by_machine) == 1:
        return f"- machine: {next(iter(by_machine))}" + (" (steps finished before markers named it)"
                                                          if "not recorded" in by_machine else "")
    parts = [f"{name} ({len(ids)} step{'s' * (len(ids) > 1)}"
             + ("" if name == "not recorded" else ": " + ", ".join(f"`{i}`" for i in ids)) + ")"
             for name, ids in by_machine.items()]
    return "- machines (timings compare only within one): " + "; ".join(parts)


def _marker_machine(root: Path, step: Step) -> str | None:
    """The machine a finished step's marker names ("not recorded" for markers older than that field)."""
    try:
        return json.loads(marker_path(root, step).read_text(encoding="utf-8")).get("machine") or "not recorded"
    except (OSError, json.JSONDecodeError, AttributeError):
        return None  # not finished


def timing_machines_note(spec: TableSpec, plan: Plan, root: Path) -> str:
    """Whether a timing table's rows were measured on one machine: seconds from two CPUs do not compare."""
    by_row = {}
    for row in spec.rows:
        names = {_marker_machine(root, plan.step(sid)) for sid in row.results.values()} - {None}
        if names:
            by_row[row.label] = ", ".join(sorted(names))
    machines = set(by_row.values())
    if not machines:
        return ""
    (only, *others) = machines
    if not others and "not recorded" not in only:
        return f"Every row measured on one machine: {only}."
    return ("Not known to be timed on one machine (" + "; ".join(f"{label}: {m}" for label, m in by_row.items())
            + "): the seconds do not compare across rows; `python benchmarks/efficiency.py` times both models on one.")


def _wall_time(plan: Plan, root: Path) -> float:
    total = 0.0
    for s in plan.steps:
        try:
            total += json.loads(marker_path(root, s).read_text())["seconds"]
        except (OSError, json.JSONDecodeError, KeyError):
            pass
    return total


def scored_on_earlier_training(plan: Plan, root: Path) -> list[str]:
    """The cells whose results were written before a training they depend on last finished.

    A training whose checkpoint was lost (``R/work/`` is not kept in git) is trained again, by the same
    command, when some of its cells are still to run. On another machine the CPU's float rounding differs, so the
    retraining is close to, not bit-identical with, the one the older cells scored: the report says which. The
    dependency is transitive: a retrained CF model changes the stage-1 and stage-2 models built on it, so a cell
    scored before its CF model's retraining no longer shares that CF model with the cells scored after.
    """
    from datetime import datetime

    finished = {}  # training id → when its newest training finished (each marker read once)
    for step in plan.steps:
        if step.kind == "train":
            try:
                finished[step.id] = datetime.fromisoformat(json.loads(marker_path(root, step).read_text())["finished"])
            except (OSError, ValueError, KeyError, TypeError):
                pass
    under: dict[str, set[str]] = {}  # step id → every step it depends on; plan order lists a step after its needs
    stale = []
    for step in plan.steps:
        under[step.id] = set(step.needs).union(*(under[n] for n in step.needs))
        if step.kind == "train" or not (root / step.output).is_file():
            continue
        try:
            created = datetime.fromisoformat(json.loads((root / step.output).read_text(encoding="utf-8"))["created"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if any(t in finished and created < finished[t] for t in under[step.id]):
            stale.append(step.id)
    return stale


# ---------------------------------------------------------------------------------------------- the report
def write_report(plan: Plan, root: str | Path, command: str = "") -> tuple[Path, Path]:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` under ``root`` → (md, html) paths."""
    from ..utils.io import atomic_write_text

    root = Path(root)
    figures = root / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((Path(plan.data) / "manifest.json").read_text(encoding="utf-8"))
    # a training finished once (its marker) counts even when its checkpoint is gone: its cells still read as done
    done = sum(marker_path(root, s).is_file() and (s.kind == "train" or (root / s.output).exists()) for s in plan.steps)
    wall = _wall_time(plan, root)
    md: list[str] = [f"# A-LLMRec reproduction: {manifest.get('name')} (budget `{plan.budget.name}`)", ""]
    intro = [
        f"- command: `{command or 'allmrec reproduce --data ' + plan.data + ' --budget ' + plan.budget.name}`",
        f"- steps finished: {done} / {len(plan.steps)}; compute time of the finished steps: {wall / 3600:.2f} h",
        f"- dataset: `{plan.data}`, {manifest.get('counts', {}).get('users')} users, "
        f"{manifest.get('counts', {}).get('items')} items; candidate fingerprint (test) "
        f"`{(manifest.get('candidate_fingerprints') or {}).get('test', '?')}`",
        f"- LLM `{plan.llm}`, SBERT `{plan.sbert}`, seed {plan.seed}; budget: "
        + ", ".join(f"{k}={v}" for k, v in plan.to_dict()["budget"].items() if k != "name"),
        f"- software: " + ", ".join(f"{k} {v}" for k, v in software_versions().items()),
        machines_line(plan, root),
        "- every cell: mean ± half-width of the 95 % bootstrap interval over the evaluated users (1,000 seeded "
        "resamples); Δ: paired bootstrap on the same users and candidates; bold: best in the column; —: not run.",
    ]
    stale = scored_on_earlier_training(plan, root)
    if stale:
        intro.append("- scored on an earlier training of the same command, retrained since in another run for "
                     "the cells still to run (not bit-identical: float rounding differs between machines): "
                     + ", ".join(f"`{s}`" for s in stale))
    if not _paper_key(manifest.get("name")):
        intro.append(f"- the paper did not use {manifest.get('name')}: there is no paper value to set beside ours.")
    md += intro + [""]
    charts = [("Hit@1 on cold / warm items", chart_cold_warm(plan, root, figures / "cold_warm.png")),
              ("Learning curves", chart_learning(plan, root, figures / "learning_curves.png")),
              ("Efficiency", chart_efficiency(plan, root, figures / "efficiency.png"))]
    body_html: list[str] = []
    for spec in plan.tables:
        md += [f"## {spec.title}", ""]
        body_html.append(f"<h2>{html.escape(spec.title)}</h2>")
        grid = table_grid(spec, plan, root)
        if grid is None:
            md += [f"Not applicable: {spec.not_applicable}", ""]
            body_html.append(f"<p><i>Not applicable: {html.escape(spec.not_applicable or '')}</i></p>")
            continue
        md += [grid.markdown(), ""]
        body_html.append(grid.html())
        note = spec.note + (" " + timing_machines_note(spec, plan, root) if spec.key == "10" else "")
        if note:
            md += [note, ""]
            body_html.append(f"<p>{html.escape(note)}</p>")
        if spec.key == "fig4":
            for row in spec.rows:
                r = _load(root, plan, row.results["genres"])
                for ex in (r or {}).get("examples", [])[:3]:
                    line = f"{row.label}, user {ex['user_id']} (top genres {', '.join(ex['top_genres'])}): “{ex['output'][:120]}”"
                    md.append(f"- {line}")
                    body_html.append(f"<p class=ex>{html.escape(line)}</p>")
            md.append("")
        cmds = _commands(spec, plan, root)
        md += ["<details><summary>commands</summary>", "", "```", *cmds, "```", "", "</details>", ""]
        body_html.append("<details><summary>commands</summary><pre>" + html.escape("\n".join(cmds)) + "</pre></details>")
    md += ["## Figures", ""]
    body_html.append("<h2>Figures</h2>")
    for title, path in charts:
        if path is None:
            continue
        md += [f"![{title}](figures/{path.name})", ""]
        data = base64.b64encode(path.read_bytes()).decode()
        body_html.append(f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>")
    md_path, html_path = root / "report.md", root / "report.html"
    atomic_write_text(md_path, "\n".join(md) + "\n")
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}th{background:#f2f2f2}img{max-width:100%}"
             "pre{background:#f7f7f7;padding:.5em;overflow-x:auto;font-size:12px}.ex{font-size:13px;color:#444}")
    intro_html = "<ul>" + "".join(f"<li>{html.escape(line[2:])}</li>" for line in intro) + "</ul>"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(md[0][2:])}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(md[0][2:])}</h1>{intro_html}{''.join(body_html)}"
            "</body></html>")
    atomic_write_text(html_path, page)
    return md_path, html_path


__all__ = ["write_report", "table_grid", "software_versions", "machine", "PAPER_TABLE1"]
