"""Killed, starved and racing writers: never a loadable half result, the previous result survives, leftovers go.

The real ``allmrec`` CLI runs in a subprocess that SIGKILLs itself at its k-th file-system write event
(:mod:`faultinject`), for every event of a small run or an even sample of a large one. Every trainer, the stage-1
tables, the prepared dataset and the model download share :func:`allmrec.utils.io.atomic_directory`, so the CLI runs
here (``data prepare`` and ``train cf`` with resumable states) exercise the same code as every other writer.
"""

from __future__ import annotations

import fcntl
import json
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_tiny_recbole
from faultinject import kill_points, run_killed

from allmrec.data.dataset import PreparedDataset
from allmrec.errors import AllmrecError
from allmrec.utils.io import atomic_directory, clean_stale_temporaries

CLI = "allmrec.cli"
#: kill points per writer (an even sample of its events: first and last always included)
POINTS = 8


def _fingerprint(out: Path) -> str | None:
    """The test-split candidate fingerprint of a loadable dataset at ``out``; None when nothing loads there."""
    try:
        return PreparedDataset.load(out).candidate_fingerprint("test")
    except AllmrecError:
        return None


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.glob(f".{out.name}.*"))


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return write_tiny_recbole(tmp_path_factory.mktemp("raw") / "src")


def test_killed_first_prepare_never_leaves_a_loadable_half_dataset(raw, tmp_path):
    out = tmp_path / "data"
    args = ["data", "prepare", "--source", str(raw), "--out", str(out)]
    _, events = run_killed(0, CLI, args, tmp_path)
    reference = _fingerprint(out)
    assert reference is not None and events > 5
    for k in kill_points(events, POINTS):
        shutil.rmtree(out, ignore_errors=True)
        code, _ = run_killed(k, CLI, args, tmp_path)
        assert code == -9, f"event {k}: the writer was not killed (rc {code})"
        assert _fingerprint(out) in (None, reference), f"killed at event {k}: a different dataset loads"
        assert not out.exists() or _fingerprint(out) == reference, f"killed at event {k}: {out} exists but does not load"
        # the next run cleans what the dead one left and succeeds
        code, _ = run_killed(-1, CLI, args + ["--overwrite"], tmp_path)
        assert code == 0 and _fingerprint(out) == reference and _leftovers(out) == [], f"after a kill at event {k}"


def test_killed_overwrite_keeps_a_complete_dataset(raw, tmp_path):
    out = tmp_path / "data"
    old_args = ["data", "prepare", "--source", str(raw), "--out", str(out)]
    new_args = old_args + ["--seed", "7", "--overwrite"]
    run_killed(0, CLI, old_args, tmp_path)
    old = _fingerprint(out)
    _, events = run_killed(0, CLI, new_args, tmp_path)
    new = _fingerprint(out)
    assert old != new
    for k in kill_points(events, POINTS):
        run_killed(0, CLI, old_args + ["--overwrite"], tmp_path)
        code, _ = run_killed(k, CLI, new_args, tmp_path)
        assert code == -9
        clean_stale_temporaries(out)  # what the next writer does first (restores a result caught mid-swap)
        assert _fingerprint(out) in (old, new), f"killed at event {k}: neither the old nor the new dataset loads"
        assert _leftovers(out) == [], f"killed at event {k}: left {_leftovers(out)}"


def test_killed_cf_training_leaves_loadable_checkpoints_and_states_only(tmp_path, tiny_data):
    """``train cf`` with resumable states: a kill anywhere leaves either nothing or a checkpoint / state that loads."""
    from allmrec.cf import load_cf_model
    from allmrec.training.checkpointing import resolve_state_dir

    out = tmp_path / "cf"
    args = ["train", "cf", "--data", str(tiny_data), "--out", str(out), "--epochs", "2", "--save-state-every", "1",
            "--no-progress"]
    _, events = run_killed(0, CLI, args, tmp_path)
    load_cf_model(out)
    for k in kill_points(events, 5):
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(Path(f"{out}-state"), ignore_errors=True)
        code, _ = run_killed(k, CLI, args, tmp_path)
        assert code == -9
        if out.exists():
            load_cf_model(out)  # a checkpoint that exists always loads
        states = Path(f"{out}-state")
        for state in sorted(states.glob("step-*")) if states.is_dir() else []:
            resolve_state_dir(state)
            assert (state / "trainer_state.json").is_file(), f"killed at event {k}: {state} has no trainer state"


def test_full_disk_is_one_line_and_leaves_nothing(raw, tmp_path):
    out = tmp_path / "data"

    def limit():  # 4 KB per file: the manifest and the Arrow files of the dataset do not fit
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    proc = subprocess.run([sys.executable, "-m", CLI, "data", "prepare", "--source", str(raw), "--out", str(out)],
                          capture_output=True, text=True, preexec_fn=limit, timeout=300)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot write" in err[-1] and "File too large" in err[-1] and "Traceback" not in proc.stderr
    assert not out.exists() and _leftovers(out) == []


def test_two_writers_of_one_output(raw, tmp_path):
    out = tmp_path / "data"
    lock = open(tmp_path / ".data.lock", "a+")
    fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # another writer holds it
    proc = subprocess.run([sys.executable, "-m", CLI, "data", "prepare", "--source", str(raw), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    lock.close()
    assert proc.returncode == 2 and "another process is writing" in proc.stderr and not out.exists()
    # truly concurrent: one wins, the other says so, the result loads
    procs = [subprocess.Popen([sys.executable, "-m", CLI, "data", "prepare", "--source", str(raw), "--out", str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "another process is writing" in loser or "already exists" in loser
    assert _fingerprint(out) is not None and _leftovers(out) == []


def test_atomic_directory_restores_the_previous_result_after_a_death_mid_swap(tmp_path):
    final = tmp_path / "ckpt"
    final.mkdir()
    (final / "v").write_text("old")
    # what a writer killed between its two renames leaves: no final, the old result parked under its pid
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    final.rename(tmp_path / f".ckpt.old-{pid}")
    (tmp_path / f".ckpt.tmp-{pid}-abc").mkdir()
    done = clean_stale_temporaries(final)
    assert (final / "v").read_text() == "old" and len(done) == 2 and _leftovers(final) == []
    with atomic_directory(final, overwrite=True) as tmp:
        (tmp / "v").write_text("new")
    assert (final / "v").read_text() == "new"
    json.dumps(done)


def test_killed_evaluation_never_leaves_a_half_results_file(tmp_path, tiny_data):
    from allmrec.cli import main

    cf = tmp_path / "cf"
    assert main(["train", "cf", "--data", str(tiny_data), "--out", str(cf), "--epochs", "2", "--no-progress"]) == 0
    out = tmp_path / "results" / "cf.json"
    args = ["evaluate", "--model", str(cf), "--data", str(tiny_data), "--out", str(out)]
    _, events = run_killed(0, CLI, args, tmp_path)
    reference = json.loads(out.read_text())
    for k in kill_points(events, 5):
        out.unlink(missing_ok=True)
        code, _ = run_killed(k, CLI, args, tmp_path)
        assert code == -9
        if out.exists():  # written by one rename: complete or absent
            assert json.loads(out.read_text())["metrics"] == reference["metrics"], f"killed at event {k}"
        code, _ = run_killed(-1, CLI, args, tmp_path)
        assert code == 0 and _leftovers(out) == [], f"after a kill at event {k}: {_leftovers(out)}"
