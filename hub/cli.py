"""``allmrec push``: publish an A-LLMRec checkpoint or a TALLRec adapter with a rendered model card.

Heavy imports (huggingface_hub, safetensors, transformers) happen inside the handler so that
``allmrec --help`` stays fast.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "push",
        help="publish a checkpoint + model card to the Hugging Face Hub",
        description=(
            "Check a checkpoint (A-LLMRec: config.json with model_type 'allmrec'; TALLRec: a peft adapter folder), render "
            "its model card from MODEL_CARD.md with the given evaluation results and the prepared dataset's manifest, and "
            "publish checkpoint + README.md + results in one commit. Needs a token (`hf auth login` or HF_TOKEN) and "
            "HF_HUB_OFFLINE=0. The frozen LLM is never uploaded. With --dry-run nothing leaves the machine."
        ),
    )
    p.add_argument("--model", required=True, help="checkpoint directory (allmrec train stage2 / train tallrec output)")
    p.add_argument("--repo-id", required=True, help="target repository NAMESPACE/NAME")
    p.add_argument("--results", nargs="*", default=[], metavar="JSON",
                   help="results files of `allmrec evaluate`: this model's fill the card's model-index, other models' "
                        "(SASRec, TALLRec, ...) the comparison table")
    p.add_argument("--data", default=None,
                   help="prepared dataset directory whose manifest.json describes the training data "
                        "(default: the dataset_path recorded in the results files, when it exists)")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--revision", default=None, help="branch to commit to (created if missing; default main)")
    p.add_argument("--commit-message", default=None, help="commit message (default: 'Upload <kind> with allmrec')")
    p.add_argument("--license", default="apache-2.0",
                   help="license id for the card metadata (check the base LLM's and the dataset's terms)")
    p.add_argument("--card-template", default=None, help="Jinja model-card template (default: the packaged MODEL_CARD.md)")
    p.add_argument("--card-out", default=None, help="also write the rendered card to this file")
    p.add_argument("--dry-run", action="store_true", help="check and render only; do not contact the Hub")
    p.add_argument("--space", action="store_true",
                   help="also publish the demo Space (hub/space: Gradio app + requirements + Space card) serving this "
                        "model, pinned to the pushed commit")
    p.add_argument("--space-id", default=None, help="the Space repository (default: <repo-id>-demo)")
    p.set_defaults(func=run_push, needs_hub=True)

    s = sub.add_parser(
        "serve",
        help="run the demo app (the Space) locally: rank candidates for typed-in watched titles",
        description="Start the Gradio demo of hub/space/app.py on a local port: type or pick watched titles from the "
                    "checkpoint's catalogue and see the candidates ranked by A-LLMRec and by its CF model alone.",
    )
    s.add_argument("--model", required=True, help="A-LLMRec checkpoint: folder or Hub id")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    s.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    s.add_argument("--seed", type=int, default=0, help="seed of the candidate draws (default: 0)")
    s.set_defaults(func=run_serve)


def run_serve(args) -> int:
    import importlib.util

    if importlib.util.find_spec("gradio") is None:  # an optional dependency
        from allmrec.errors import AllmrecError

        raise AllmrecError("`allmrec serve` needs gradio: pip install 'allmrec[space]'")
    from .space.app import main

    return main(["--model", str(args.model), "--host", args.host, "--port", str(args.port), "--seed", str(args.seed)])


def run_push(args) -> int:
    from .push import prepare_push, push_checkpoint, summary_json, write_card

    if args.dry_run:
        prepared = prepare_push(args.model, args.repo_id, args.results, args.data, license=args.license,
                                template=args.card_template)
        if args.card_out:
            write_card(prepared, args.card_out)
        files = list(prepared.info.files) + ["README.md"] + sorted(prepared.results_files)
        print(f"dry run: {prepared.info.kind} checkpoint {args.model} is complete; would push {len(files)} files to "
              f"{args.repo_id}: {', '.join(files)}" + (f"; card written to {args.card_out}" if args.card_out else ""))
        return 0
    result = push_checkpoint(
        args.model, args.repo_id, results=args.results, data=args.data, private=args.private, revision=args.revision,
        commit_message=args.commit_message, license=args.license, template=args.card_template,
    )
    if args.card_out:
        from huggingface_hub import ModelCard, hf_hub_download

        from allmrec.utils.io import atomic_write_text

        card = ModelCard.load(hf_hub_download(args.repo_id, "README.md", revision=result.commit_sha))
        atomic_write_text(args.card_out, str(card))
    print(summary_json(result))
    print(f"load it pinned to this commit with revision=\"{result.commit_sha}\"")
    if args.space:
        from .push import push_space

        space = push_space(args.repo_id, args.space_id, model_revision=result.commit_sha, private=args.private)
        print(summary_json(space))
    return 0
