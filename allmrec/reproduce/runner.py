"""Run a :class:`~allmrec.reproduce.plan.Plan`: each step once, resumable, one progress line per step.

A step is **done** when its marker ``R/done/<step>.json`` exists; the marker is written atomically *after* the
step's command returned 0, and every command writes its own output atomically (checkpoint directories, results
files), so a run killed at any point leaves either a finished step (marker + output) or no marker, and a step
without a marker is run again. Long trainings also save resumable states (``--save-state-every``): a killed
stage-2 step resumes from its newest state instead of starting over.

``R/plan.json`` records what the folder was planned with (data, budget, LLM, SBERT, seed); a second run with a
different plan into the same folder is refused rather than mixing cells of two budgets.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Callable

from ..errors import AllmrecError
from ..utils.io import atomic_write_json
from .budgets import ReproduceBudget
from .plan import Plan, Step

IDENTITY_FIELDS = ("data", "budget", "llm", "sbert", "seed", "cross_domain")
_BUDGET_DEFAULTS = {f.name: f.default for f in fields(ReproduceBudget) if f.default is not MISSING}
#: testing hook: the training loop of the N-th planned step is SIGKILLed after its first optimisation step
KILL_AT_STEP_ENV = "ALLMREC_REPRODUCE_KILL_AT"


def marker_path(root: Path, step: Step) -> Path:
    return root / "done" / (step.id.replace("/", "__") + ".json")


def checkpoint_training_log(checkpoint: Path) -> Path | None:
    """The training log a checkpoint directory holds (A-LLMRec / CF / stage 1, or a LoRA adapter's), if any."""
    for name in ("training_log.json", "adapter_training_log.json"):
        if (checkpoint / name).is_file():
            return checkpoint / name
    return None


def training_log_copy(root: Path, step: Step) -> Path:
    """Where the runner keeps a finished training's log (Table 10, learning curves) outside ``R/work/``."""
    return root / "training_logs" / (step.output.split("/")[-1] + ".json")


def is_done(root: Path, step: Step, plan: Plan | None = None) -> bool:
    """A step is done when its marker and its output exist, or, for a training whose checkpoint is gone (``R/work/``
    is not kept in git, nor across machines), when every step that reads it is done: the report only needs
    the readers' results files and the training log the runner copied aside, so nothing is retrained."""
    if not marker_path(root, step).is_file():
        return False
    if (root / step.output).exists():
        return True
    if plan is None or step.kind != "train":
        return False
    readers = plan.readers(step.id)
    return bool(readers) and all(is_done(root, s, plan) for s in readers)


def machine() -> str:
    """The CPU model (the GPU's too, where there is one), core count and OS: what a step's marker records."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return text


def _fmt_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def format_plan(plan: Plan, root: Path) -> str:
    """The ``--dry-run`` listing: every command with its estimated cost, and whether it is already done."""
    lines = [f"allmrec reproduce: {len(plan.steps)} steps for tables {', '.join(t.key for t in plan.tables)} "
             f"on {plan.data} (budget {plan.budget.name}, LLM {plan.llm}, SBERT {plan.sbert}, seed {plan.seed})"]
    for k, s in enumerate(plan.steps, 1):
        state = "done" if is_done(root, s, plan) else f"~{_fmt_duration(s.estimate_s)}"
        lines.append(f"[{k:>3}/{len(plan.steps)}] {state:>8}  {s.command(root)}")
    todo = sum(s.estimate_s for s in plan.steps if not is_done(root, s, plan))
    lines.append(f"estimated time left: {_fmt_duration(todo)} (all steps: {_fmt_duration(plan.estimate_s())}; "
                 "costs measured on 2 CPU cores with SmolLM2-135M)")
    for t in plan.tables:
        if t.not_applicable:
            lines.append(f"{t.title}: not applicable: {t.not_applicable}")
    return "\n".join(lines)


def check_identity(plan: Plan, root: Path) -> None:
    """Write ``R/plan.json``, or refuse when ``R`` already belongs to a different plan."""
    path = root / "plan.json"
    mine = plan.to_dict()
    if path.is_file():
        try:
            theirs = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise AllmrecError(f"{path} is corrupt ({e}); delete it to start this folder over") from e
        if isinstance(theirs.get("budget"), dict):
            # a budget field added after that folder was planned reads as its default (what that run did)
            theirs["budget"] = {**_BUDGET_DEFAULTS, **theirs["budget"]}
        changed = [k for k in IDENTITY_FIELDS if theirs.get(k) != mine.get(k)]
        if changed:
            raise AllmrecError(f"{root} holds a run planned with different {', '.join(changed)}; use another --out "
                               "(or delete the folder) instead of mixing cells of two plans")
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, mine)


def _argv(step: Step, root: Path) -> list[str]:
    from ..training.checkpointing import default_state_dir

    argv = step.resolved_argv(root)
    out = root / step.output
    if step.kind == "train":
        state = default_state_dir(out)
        if "--save-state-every" in argv and state.is_dir() and any(state.glob("step-*")):
            argv += ["--resume-from", str(state)]  # a killed long training goes on from its newest state
        if out.exists():  # a finished output without its marker (killed in between): written again
            argv.append("--overwrite")
    return argv


def _rate(step: Step) -> str:
    """What the cost of a step scales with: its plan ``rate`` (``stage2_step_token``, ``rank_user_index``, ...).

    A step built without one (by hand, in a test) falls back to its kind: one ratio for all its trainings.
    """
    return step.rate or step.kind


def remaining_seconds(left: list[Step], spent: dict[str, float], estimated: dict[str, float]) -> float:
    """The estimate of the steps ``left``, each rescaled by the measured / estimated ratio of its own rate.

    A rate not measured yet keeps its estimate: one rate's ratio says nothing about another's (a cheap genre
    cell that ran 4x faster than estimated must not shrink the estimate of hours of LLM training 4x).
    """
    return sum(s.estimate_s * (spent[_rate(s)] / estimated[_rate(s)] if estimated.get(_rate(s)) else 1.0) for s in left)


def _measured(root: Path, plan: Plan) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds actually spent / estimated per rate by the steps this folder already finished (their markers)."""
    spent: dict[str, float] = {}
    estimated: dict[str, float] = {}
    for step in plan.steps:
        try:
            marker = json.loads(marker_path(root, step).read_text(encoding="utf-8"))
            seconds, estimate = float(marker["seconds"]), float(marker["estimate_s"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # no marker (not done) or one written before markers carried both numbers
        spent[_rate(step)] = spent.get(_rate(step), 0.0) + seconds
        estimated[_rate(step)] = estimated.get(_rate(step), 0.0) + estimate
    return spent, estimated


def _progress_line(k: int, n: int, step: Step, elapsed: float, remaining: float, width: int = 20) -> str:
    filled = int(width * (k - 1) / max(n, 1))
    bar = "#" * filled + "." * (width - filled)
    return (f"[{k:>3}/{n}] [{bar}] {100 * (k - 1) / max(n, 1):3.0f}%  {step.label}  (est {_fmt_duration(step.estimate_s)}; "
            f"elapsed {_fmt_duration(elapsed)}, remaining ~{_fmt_duration(remaining)})")


def parse_time_limit(text: str) -> float:
    """``--time-limit``: ``90m``, ``2h``, ``2h30m``, ``45s`` or a bare number of minutes → seconds."""
    import re

    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t) * 60.0
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", t)
    if not t or parts is None or not any(parts.groups()):
        raise AllmrecError(f"--time-limit {text!r}: write it as 90m, 2h, 2h30m, 45s or a number of minutes")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    seconds = 3600.0 * h + 60.0 * m + s
    if seconds <= 0:
        raise AllmrecError(f"--time-limit {text!r} must be more than zero")
    return seconds


def trained_fraction(step: Step, root: Path) -> float:
    """The share of a training's ``--max-steps`` its newest saved state holds: the run resumes from there."""
    from ..training.checkpointing import STEP_PREFIX, CheckpointError, default_state_dir, resolve_state_dir

    if step.kind != "train" or "--max-steps" not in step.argv:
        return 0.0
    total = int(step.argv[step.argv.index("--max-steps") + 1])
    try:  # the state the training resumes from: the newest complete step-N
        newest = resolve_state_dir(default_state_dir(root / step.output))
    except CheckpointError:
        return 0.0
    saved = newest.name[len(STEP_PREFIX):]
    return min(int(saved) / total, 1.0) if saved.isdigit() and total > 0 else 0.0


def _unit_cost(step: Step, plan: Plan, root: Path, cost: Callable[[Step], float], window: float) -> float:
    """What starting ``step`` commits a time-limited run to: a training and its readers not done yet.

    A checkpoint is only worth training if its readers score it before the window closes: ``R/work/`` may not
    outlive the machine's job (it is not kept in git), and a training whose readers did not run is trained again.
    When the training and all its readers could never fit one ``window`` (the whole ``--time-limit``), the unit
    is the training and the readers that fit with it, in plan order; the others are deferred and score a
    retraining in a later window (the report marks cells scored on an earlier training). Without that rule
    such a training would be deferred by every run of the same command.
    """
    if step.kind != "train":
        return cost(step)
    readers = [cost(r) for r in plan.readers(step.id) if not is_done(root, r, plan)]
    unit = cost(step) + sum(readers)
    if unit <= window or not readers:
        return unit
    fitted, taken = cost(step), 0
    for c in readers:  # in plan order, as run_plan meets them
        if fitted + c <= window:
            fitted, taken = fitted + c, taken + 1
    # no reader fits beside the training: training it would be wasted, so the whole unit stands (never fits)
    return fitted if taken else unit


def run_plan(plan: Plan, root: str | Path, runner: Callable[[list[str]], int] | None = None, echo=print,
             time_limit_s: float | None = None) -> dict:
    """Run every step not done yet, in order → ``{"ran": [...], "skipped": [...], "deferred": [...], "seconds": float}``.

    ``runner`` runs one ``allmrec`` argv and returns its exit code (default: :func:`allmrec.cli.main` in this
    process). A failing step stops the run with an error that names it; running the command again resumes.

    With ``time_limit_s`` a step starts only when its estimate (rescaled by what this folder measured; for a
    training, with the readers of its checkpoint) fits in the time left; a step that does not fit is deferred and
    later, cheaper steps still run, so a fixed window (a CPU session, a cluster job) is packed instead of ending
    on a half-trained model. The deferred steps are what the next run of the same command does.
    """
    from ..cli import main

    root = Path(root)
    runner = runner or main
    check_identity(plan, root)
    (root / "done").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    ran, skipped, deferred = [], [], []
    # actual / estimated seconds per rate (`cf_epoch`, `stage2_step_token`, `rank_user_index`, ...), from the steps
    # finished before (their markers) and in this run: the estimates are off by different factors for cheap CF
    # trainings and LLM steps, so each rate is rescaled by its own ratio
    spent, estimated = _measured(root, plan)
    n = len(plan.steps)
    here = machine()  # what every marker of this run records

    def cost(s: Step) -> float:  # rescaled by its rate's measured ratio, less what a saved training state holds
        return remaining_seconds([s], spent, estimated) * (1.0 - trained_fraction(s, root))

    for k, step in enumerate(plan.steps, 1):
        if is_done(root, step, plan):
            skipped.append(step.id)
            echo(f"[{k:>3}/{n}] done  {step.label}")
            continue
        missing = [d for d in step.needs if not is_done(root, plan.step(d), plan)]
        if missing and all(d in deferred for d in missing):
            deferred.append(step.id)
            echo(f"[{k:>3}/{n}] deferred  {step.label} (needs {', '.join(missing)}, deferred)")
            continue
        if missing:
            raise AllmrecError(f"step {step.id} needs {', '.join(missing)}, which did not finish")
        if time_limit_s is not None:
            commits = _unit_cost(step, plan, root, cost, time_limit_s)
            if time.perf_counter() - start + commits > time_limit_s:
                deferred.append(step.id)
                never = " (longer than the whole --time-limit: give a longer one)" if commits > time_limit_s else ""
                echo(f"[{k:>3}/{n}] deferred  {step.label} (~{_fmt_duration(commits)} with what reads it; "
                     f"{_fmt_duration(time_limit_s - (time.perf_counter() - start))} of --time-limit left){never}")
                continue
        left = sum(cost(s) for s in plan.steps[k - 1:] if not is_done(root, s, plan))
        echo(_progress_line(k, n, step, time.perf_counter() - start, left))
        argv = _argv(step, root)
        echo("$ allmrec " + " ".join(argv))
        if step.kind != "train":
            (root / step.output).parent.mkdir(parents=True, exist_ok=True)
        if os.environ.get(KILL_AT_STEP_ENV) == str(k):
            from ..training.checkpointing import KILL_AFTER_STEP_ENV

            os.environ[KILL_AFTER_STEP_ENV] = "1"
        # what this run is estimated to do: a training resumed from a saved state runs only the rest of it, and the
        # marker's seconds / estimate ratio must compare like with like
        estimate_run = step.estimate_s * (1.0 - trained_fraction(step, root))
        t0 = time.perf_counter()
        sys.stdout.flush()
        saved_argv, sys.argv = sys.argv, ["allmrec", *argv]  # what each output records as the command that made it
        try:
            rc = runner(argv)
        finally:
            sys.argv = saved_argv
        seconds = time.perf_counter() - t0
        gc.collect()
        if rc != 0 or not (root / step.output).exists():
            raise AllmrecError(f"step {step.id} failed (exit {rc}): {step.command(root)}; fix the cause and run "
                               "`allmrec reproduce` again: finished steps are kept")
        log = checkpoint_training_log(root / step.output) if step.kind == "train" else None
        if log is not None:  # the log outlives the checkpoint (see is_done)
            atomic_write_json(training_log_copy(root, step), json.loads(log.read_text(encoding="utf-8")))
        atomic_write_json(marker_path(root, step), {"id": step.id, "command": "allmrec " + " ".join(argv),
                                                    "seconds": round(seconds, 1), "estimate_s": round(estimate_run, 1),
                                                    "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                                    "machine": here})
        spent[_rate(step)] = spent.get(_rate(step), 0.0) + seconds
        estimated[_rate(step)] = estimated.get(_rate(step), 0.0) + estimate_run
        ran.append(step.id)
    total = time.perf_counter() - start
    if deferred:
        todo = remaining_seconds([plan.step(d) for d in deferred], spent, estimated)
        echo(f"time limit: {len(ran)} steps run in {_fmt_duration(total)}, {len(deferred)} deferred "
             f"(~{_fmt_duration(todo)}): run the same command again to go on")
    else:
        echo(f"[{n:>3}/{n}] [{'#' * 20}] 100%  all steps done in {_fmt_duration(total)} "
             f"({len(ran)} run now, {len(skipped)} already done)")
    return {"ran": ran, "skipped": skipped, "deferred": deferred, "seconds": total}


def remove_step(root: Path, step: Step) -> None:
    """Forget a step (its marker and output), e.g. to re-run it after changing code."""
    marker_path(root, step).unlink(missing_ok=True)
    out = root / step.output
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()


__all__ = ["run_plan", "parse_time_limit", "trained_fraction", "format_plan", "check_identity", "is_done", "marker_path",
           "remove_step", "training_log_copy", "checkpoint_training_log"]
