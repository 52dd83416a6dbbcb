"""Render the example model cards in this folder from trained ml-100k checkpoints and their results files.

The cards link the prepared dataset's repository, so the dataset is first pushed with `allmrec data push` — here to
the loopback test Hub of ``tests/fake_hub.py`` (nothing leaves the machine), as ``allmrec/ml-100k-allmrec``; the
cards are then rendered with ``allmrec push --dry-run --card-out`` exactly as a real push would render them.

The cards committed here were rendered from the checkpoints of the ``--budget cpu`` report
(``examples/reports/ml100k``: A-LLMRec with the index-lora recipe, 60 LLM steps; TALLRec, 60 steps; 200 seeded test
users each; the checkpoints live in its ``work/`` folder, which git does not keep):

    R=examples/reports/ml100k
    python examples/model_cards/render_cards.py \\
        --allmrec $R/work/s2-sasrec --allmrec-results $R/results/s2-sasrec.rank.json \\
        --tallrec $R/work/tallrec --tallrec-results $R/results/tallrec.rank.json \\
        --sasrec-results $R/results/cf-sasrec.rank.json $R/results/cf-sasrec-ce.rank.json $R/results/llm-only.rank.json \\
        --data runs/data/ml-100k
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DATASET_REPO = "allmrec/ml-100k-allmrec"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--allmrec", required=True, help="A-LLMRec checkpoint")
    p.add_argument("--allmrec-results", required=True, nargs="+", help="its results files")
    p.add_argument("--tallrec", required=True, help="TALLRec adapter")
    p.add_argument("--tallrec-results", required=True, nargs="+", help="its results files")
    p.add_argument("--sasrec-results", nargs="*", default=[], help="SASRec results for the comparison tables")
    p.add_argument("--data", required=True, help="the prepared dataset both were trained on")
    args = p.parse_args()

    sys.path.insert(0, str(ROOT / "tests"))
    from fake_hub import FakeHub  # the loopback Hub of the test suite

    hub = FakeHub().start()
    work = Path(tempfile.mkdtemp(prefix="cards-"))
    try:
        data = work / "ml-100k"
        shutil.copytree(args.data, data)  # data push records hub_source.json next to the data: keep runs/ untouched
        env = dict(os.environ, HF_ENDPOINT=hub.endpoint, HF_TOKEN=hub.token, HF_HOME=str(work / "hf"),
                   HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0", HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1")
        run = lambda *a: subprocess.run([sys.executable, "-m", "allmrec", *a], env=env, check=True)  # noqa: E731
        run("data", "push", "--data", str(data), "--repo-id", DATASET_REPO)
        others = args.sasrec_results
        run("push", "--model", args.allmrec, "--repo-id", "allmrec/allmrec-ml100k-smollm2", "--data", str(data),
            "--results", *args.allmrec_results, *args.tallrec_results, *others, "--dry-run",
            "--card-out", str(HERE / "allmrec-ml100k-smollm2.md"))
        run("push", "--model", args.tallrec, "--repo-id", "allmrec/tallrec-ml100k-smollm2", "--data", str(data),
            "--results", *args.tallrec_results, *args.allmrec_results, *others, "--dry-run",
            "--card-out", str(HERE / "tallrec-ml100k-smollm2.md"))
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"cards written to {HERE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
