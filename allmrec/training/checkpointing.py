"""Resumable training state: ``--save-state-every N`` and ``--resume-from DIR``.

A *training state* is what continuing a run needs, as opposed to the *checkpoint* in ``--out`` (the best
model, for inference). It lives next to the output, in ``OUT-state/step-00000120/``:

* ``trainable_<i>.safetensors`` — only the parameters that train (F_U/F_I, LoRA, the CF model, the
  stage-1 autoencoders and SBERT's trained layers). Frozen weights (the LLM: 13 GB for OPT-6.7B) are
  rebuilt from their source on resume, never copied into the state: ``accelerator.save_state`` is
  steered by a save/load pre-hook pair (``register_save_state_pre_hook``) that replaces its model files.
* ``optimizer.bin``, ``scheduler.bin``, ``random_states_<rank>.pkl`` — accelerate's own files
  (optimizer moments, LR schedule, the Python/NumPy/torch RNGs of every process).
* ``trainer_state.json`` — the loop's position (epoch, next batch) and bookkeeping (best validation,
  patience counter, the log so far) plus the run's arguments, checked on resume.

Each state is written into a hidden temporary folder and renamed when complete, so a run killed while
saving leaves the previous state intact and ``--resume-from OUT-state`` picks the newest complete one.
The loops are written so that a resumed run is the uninterrupted run: their sampling is seeded per
(seed, epoch, user), and mid-epoch they skip the batches already done (``skip_first_batches`` for
DataLoaders, an index offset for the prompt loops).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AllmrecError, CheckpointError
from ..utils.io import atomic_write_json
from ..utils.logging import get_logger

logger = get_logger(__name__)

STATE_FILE = "trainer_state.json"
TRAINABLE_FILE = "trainable_{}.safetensors"
STEP_PREFIX = "step-"
#: testing hook: SIGKILL this process right after the training state of this step is written
KILL_AFTER_STEP_ENV = "ALLMREC_KILL_AFTER_STEP"
#: arguments that may change between the interrupted run and its resumption
RESUME_MUTABLE = {"resume_from", "save_state_every", "save_state_limit", "overwrite", "progress", "show_progress",
                  "log_every", "out"}


@dataclass(kw_only=True)
class ScalingArguments:
    """Options every ``allmrec train …`` command shares for long and distributed runs."""

    gradient_accumulation_steps: int = field(default=1, metadata={"help": "split each optimisation step into N micro-batches per process: the same update with 1/N of the activation memory"})
    save_state_every: int | None = field(default=None, metadata={"help": "write a resumable training state (trainable weights, optimiser, RNGs, loop position; no frozen LLM) to OUT-state/ every N optimisation steps"})
    save_state_limit: int = field(default=2, metadata={"help": "keep only the newest N training states"})
    resume_from: str | None = field(default=None, metadata={"help": "continue an interrupted run from OUT-state/ (newest state) or OUT-state/step-N (same arguments required)"})

    def validate_scaling(self) -> None:
        if self.gradient_accumulation_steps <= 0:
            raise AllmrecError(f"--gradient-accumulation-steps must be positive, got {self.gradient_accumulation_steps}")
        if self.save_state_every is not None and self.save_state_every <= 0:
            raise AllmrecError(f"--save-state-every must be positive when given, got {self.save_state_every}")
        if self.save_state_limit <= 0:
            raise AllmrecError(f"--save-state-limit must be positive, got {self.save_state_limit}")
        if self.resume_from is not None:
            resolve_state_dir(self.resume_from)  # fail before minutes of model loading


def cli_fields(cls) -> list:
    """A training dataclass's fields in ``--help`` order: the command's own options first, then those of each base
    class it inherits (e.g. ``PromptTrainingArguments``'), the shared :class:`ScalingArguments` last (dataclass
    inheritance itself lists the base classes' fields first)."""
    from dataclasses import fields, is_dataclass

    chain = [{f.name for f in fields(k)} for k in cls.__mro__ if is_dataclass(k)]  # cls first, ScalingArguments last

    def declared_in(f) -> int:  # the most basic class that has the field: where it was declared
        return max(i for i, names in enumerate(chain) if f.name in names)

    return sorted(fields(cls), key=declared_in)  # stable: declaration order within each class


def add_scaling_options(parser) -> None:
    """Add the :class:`ScalingArguments` options to a hand-written argparse parser (help from the fields)."""
    from dataclasses import MISSING, fields

    for f in fields(ScalingArguments):
        kind = int if "int" in str(f.type) else str
        default = None if f.default is MISSING else f.default
        help_text = f.metadata["help"] + (f" (default: {default})" if default is not None else "")
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind, default=default, help=help_text)


def scaling_kwargs(namespace) -> dict[str, Any]:
    """The :class:`ScalingArguments` values of a parsed namespace."""
    from dataclasses import fields

    return {f.name: getattr(namespace, f.name) for f in fields(ScalingArguments)}


def default_state_dir(out: str | Path) -> Path:
    out = Path(out)
    return out.parent / f"{out.name}-state"


def resolve_state_dir(path: str | Path) -> Path:
    """A complete ``step-N`` folder: ``path`` itself, or the newest complete one inside ``path``."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(f"--resume-from {path}: no such training state; pass OUT-state/ or OUT-state/step-N")
    steps = sorted(p for p in path.iterdir() if p.name.startswith(STEP_PREFIX) and (p / STATE_FILE).is_file())
    if not steps:
        raise CheckpointError(f"--resume-from {path}: holds no complete training state ({STEP_PREFIX}N/{STATE_FILE})")
    return steps[-1]


def _trainable_state(module) -> dict:
    return {n: p.detach().cpu().contiguous() for n, p in module.named_parameters() if p.requires_grad}


def maybe_kill_for_testing(step: int) -> None:
    """Fault injection for the resume tests: a real SIGKILL (no cleanup, no atexit) after ``step``."""
    target = os.environ.get(KILL_AFTER_STEP_ENV)
    if target and int(target) == step:
        logger.warning("%s=%s: killing this process now (testing hook)", KILL_AFTER_STEP_ENV, target)
        os.kill(os.getpid(), signal.SIGKILL)


class TrainingStateManager:
    """Saves and restores training states through an ``Accelerator`` (see the module docstring).

    ``models`` are the prepared models whose trainable parameters make up the state, in the order they
    were passed to ``accelerator.prepare``.
    """

    def __init__(self, accelerator, out: str | Path, args, every: int | None, limit: int = 2, state_dir: str | Path | None = None):
        self.accelerator = accelerator
        self.dir = Path(state_dir) if state_dir else default_state_dir(out)
        self.every = every
        self.limit = limit
        self.args = dict(args) if isinstance(args, dict) else vars(args).copy()
        accelerator.register_save_state_pre_hook(self._save_hook)
        accelerator.register_load_state_pre_hook(self._load_hook)

    # --------------------------------------------------------------------------- accelerate hooks
    def _save_hook(self, models, weights, output_dir) -> None:
        from safetensors.torch import save_file

        if self.accelerator.is_main_process:
            for i, model in enumerate(models):
                save_file(_trainable_state(self.accelerator.unwrap_model(model)), os.path.join(output_dir, TRAINABLE_FILE.format(i)))
        weights.clear()  # accelerate would otherwise write every model's full state dict (the LLM included)

    def _load_hook(self, models, input_dir) -> None:
        from safetensors.torch import load_file

        for i, model in enumerate(models):
            core = self.accelerator.unwrap_model(model)
            file = os.path.join(input_dir, TRAINABLE_FILE.format(i))
            if not os.path.isfile(file):
                raise CheckpointError(f"{input_dir} has no {TRAINABLE_FILE.format(i)}; the training state is incomplete")
            state = load_file(file)
            expected = set(_trainable_state(core))
            if set(state) != expected:
                raise CheckpointError(
                    f"{file} does not match this model's trainable parameters (missing "
                    f"{sorted(expected - set(state))[:3]}, unexpected {sorted(set(state) - expected)[:3]}); "
                    "resume with the arguments of the interrupted run"
                )
            core.load_state_dict(state, strict=False)
        models.clear()  # loaded here; accelerate must not try a strict full load

    # --------------------------------------------------------------------------- save / load
    def due(self, step: int) -> bool:
        return bool(self.every) and step % self.every == 0

    def save(self, step: int, trainer_state: dict[str, Any]) -> Path | None:
        """Write ``step-N`` (all processes take part: each saves its RNG state) and prune old states."""
        acc = self.accelerator
        final = self.dir / f"{STEP_PREFIX}{step:08d}"
        tmp = self.dir / f".{final.name}.tmp"
        if acc.is_main_process:
            self.dir.mkdir(parents=True, exist_ok=True)
            for stale in self.dir.glob(f".{STEP_PREFIX}*.tmp"):  # left by a run killed mid-save: never loadable
                logger.warning("removing %s, an incomplete training state of a killed run", stale)
                shutil.rmtree(stale, ignore_errors=True)
            tmp.mkdir()
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            atomic_write_json(tmp / STATE_FILE, {"step": step, "args": self.args, **trainer_state})
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            older = sorted(p for p in self.dir.iterdir() if p.name.startswith(STEP_PREFIX))
            for old in older[:-self.limit]:
                shutil.rmtree(old, ignore_errors=True)
            logger.info("training state saved: %s", final)
        acc.wait_for_everyone()
        return final

    def load(self, path: str | Path) -> dict[str, Any]:
        """Restore weights/optimiser/RNGs from a state and return its ``trainer_state.json``."""
        folder = resolve_state_dir(path)
        try:
            saved = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{folder / STATE_FILE} is unreadable ({e}); resume from an older state") from e
        self.check_arguments(saved.get("args", {}))
        self.accelerator.load_state(str(folder))
        logger.info("resumed from %s (step %d)", folder, saved["step"])
        return saved

    def check_arguments(self, saved: dict[str, Any]) -> None:
        # an option newer than the saved state (absent from it) kept its default there, which is the old behaviour
        changed = sorted(k for k in set(saved) | set(self.args)
                         if k not in RESUME_MUTABLE and k in saved and saved.get(k) != self.args.get(k))
        if changed:
            detail = ", ".join(f"{k}: {saved.get(k)!r} → {self.args.get(k)!r}" for k in changed[:4])
            raise AllmrecError(f"--resume-from: arguments differ from the interrupted run ({detail}); rerun with the same arguments")


__all__ = [
    "ScalingArguments",
    "TrainingStateManager",
    "cli_fields",
    "add_scaling_options",
    "scaling_kwargs",
    "default_state_dir",
    "resolve_state_dir",
    "maybe_kill_for_testing",
    "KILL_AFTER_STEP_ENV",
    "STATE_FILE",
]
