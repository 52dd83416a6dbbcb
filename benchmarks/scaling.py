"""Stage-2 training throughput with 1 and N processes, and on a GPU with a ~1B LLM (model FLOPs utilisation).

CPU mode (default): ``allmrec train stage2`` on ml-100k with SmolLM2-135M for ``--steps`` optimisation steps
of ``--batch-size`` users, once as one process with all ``--threads`` threads, once under
``accelerate launch`` with ``--processes`` gloo processes sharing the same cores (threads split evenly), so
both runs use the same CPU. Same global batch, same update (tests/test_scaling.py); the table shows what
the split costs or gains.

    python benchmarks/scaling.py                      # ml-100k prepared in a temp dir, random stage-1 tables
    python benchmarks/scaling.py --steps 10 --llm-dtype bfloat16

CUDA mode (``--cuda``): a short stage-2 run of a randomly initialised Llama-architecture LLM of ~1.1 B
parameters (TinyLlama's shape: hidden 2048, 22 layers, MLP 5632; SmolLM2's tokenizer and vocabulary), bf16,
batch ``--batch-size``; prints samples/s, LLM tokens/s and model FLOPs utilisation. Random weights cost the
same FLOPs as trained ones, and nothing has to be downloaded. MFU counts 2·N FLOPs per token for the forward
pass and 2·N for the backward pass into the soft tokens (the frozen LLM gets no weight gradients; 2·N more
with --gradient-checkpointing), attention excluded, against the GPU's dense bf16 peak.

    python benchmarks/scaling.py --cuda --steps 30 --processes 1

Every run is a subprocess; timings come from the run's own ``training_log.json`` (the first step, which
includes one-off allocation, is included: use enough steps).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shared import prepare_inputs  # noqa: E402  (the same inputs as benchmarks/stage2.py)

#: dense bf16 tensor-core peak, TFLOP/s (vendor data sheets, SXM parts)
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "A6000": 154.8, "L40S": 362.1, "A10": 125.0}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(args, out: Path, processes: int, threads: int, llm: str) -> dict:
    cmd = ["-m", "allmrec", "train", "stage2", "--data", args.data, "--stage1", args.stage1, "--llm", llm,
           "--out", str(out), "--max-steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--valid-users", "0", "--no-progress", "--overwrite", "--llm-dtype", args.llm_dtype,
           "--gradient-accumulation-steps", str(args.gradient_accumulation_steps)]
    if args.gradient_checkpointing:
        cmd.append("--gradient-checkpointing")
    if processes == 1:
        full = [sys.executable, *cmd]
    else:
        full = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(_free_port()), *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(full, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{processes}-process run failed (exit {proc.returncode})")
    log = json.loads((out / "training_log.json").read_text())
    return {"processes": processes, "threads_per_process": threads, "steps": log["steps"],
            "samples": log["samples_seen"], "seconds": log["timings"]["train"],
            "samples_per_second": log["train_samples_per_second"], "tokens_per_second": log.get("train_tokens_per_second"),
            "tokens": log.get("tokens_seen")}


def _tiny_llama_1b(folder: Path) -> tuple[str, int]:
    """A random ~1.1 B Llama (bf16) with SmolLM2's tokenizer, saved to ``folder``; returns (path, parameters)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from allmrec.assets import resolve_llm

    tok = AutoTokenizer.from_pretrained(resolve_llm("smollm2-135m-instruct"))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                      num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                      tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    return str(folder), n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="prepared dataset (default: ml-100k prepared into a temp dir)")
    p.add_argument("--cf", help="CF checkpoint (default: an untrained SASRec)")
    p.add_argument("--stage1", help="stage-1 output directory (default: random tables)")
    p.add_argument("--llm", default="smollm2-135m-instruct", help="frozen LLM of the CPU mode")
    p.add_argument("--steps", type=int, default=6, help="optimisation steps per run")
    p.add_argument("--batch-size", type=int, default=4, help="global batch (users per step; paper: 4)")
    p.add_argument("--gradient-accumulation-steps", type=int, default=1)
    p.add_argument("--processes", type=int, default=2, help="processes of the distributed run")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads in total (CPU mode)")
    p.add_argument("--llm-dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--cuda", action="store_true", help="GPU mode: a ~1.1 B LLM, samples/s and MFU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepare_inputs(args, tmp)
        if args.cuda:
            if not torch.cuda.is_available():
                raise SystemExit("--cuda: no CUDA device here")
            llm, n_params = _tiny_llama_1b(tmp / "llama-1b")
            gpus = torch.cuda.device_count()
            runs = [1] + ([min(args.processes, gpus)] if min(args.processes, gpus) > 1 else [])
            for n in runs:
                results.append(_train(args, tmp / f"run{n}", n, 4, llm))
        else:
            llm, n_params = args.llm, None
            results.append(_train(args, tmp / "run1", 1, args.threads, llm))
            results.append(_train(args, tmp / f"run{args.processes}", args.processes,
                                  max(1, args.threads // args.processes), llm))

    base = results[0]["samples_per_second"]
    if args.cuda:
        name = torch.cuda.get_device_name(0)
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        flops_per_token = (6 if args.gradient_checkpointing else 4) * n_params
        print(f"\nstage 2, random Llama {n_params / 1e9:.2f} B (bf16), {name}, batch {args.batch_size}, {args.steps} steps")
    else:
        print(f"\nstage 2, {args.llm} ({args.llm_dtype}), CPU with {args.threads} threads in total, batch "
              f"{args.batch_size}, {args.steps} steps; load average {os.getloadavg()[0]:.2f}")
    header = f"{'processes':>9} {'threads/proc':>12} {'seconds':>9} {'samples/s':>10} {'tokens/s':>10} {'speed-up':>9}"
    print(header + (f" {'TFLOP/s':>8} {'MFU':>7}" if args.cuda else ""))
    for r in results:
        line = (f"{r['processes']:>9} {r['threads_per_process']:>12} {r['seconds']:>9.2f} {r['samples_per_second']:>10.3f} "
                f"{(r['tokens_per_second'] or 0):>10.1f} {r['samples_per_second'] / base:>8.2f}x")
        if args.cuda:
            tflops = (r["tokens_per_second"] or 0) * flops_per_token / 1e12
            r["tflops"] = round(tflops, 2)
            r["mfu"] = round(tflops / (peak * r["processes"]), 4) if peak else None
            line += f" {tflops:>8.1f} {('%.1f%%' % (100 * r['mfu'])) if peak else 'n/a':>7}"
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
