#!/usr/bin/env bash
# A-LLMRec on Amazon Luxury_Beauty — the paper's "Beauty", confirmed by the authors (issue #6) — (Amazon Review Data 2018, 5-core reviews + metadata) at paper scale.
# Download (needs internet, once): https://cseweb.ucsd.edu/~jmcauley/datasets/amazon_v2/  →
#   $DATA_DIR/Luxury_Beauty.json.gz and $DATA_DIR/meta_Luxury_Beauty.json.gz
# Defaults: 4 GPUs (DDP), OPT-6.7B, nq-distilbert SBERT; see pipeline.sh for LLM=, LLM_QUANT=, NPROC=, ….
# The dataset name selects the paper's filtering (rating > 3 and 4-core for Beauty/Toys; 5-core otherwise)
# and prompt wording (movie/game/item); memory per step: examples/README.md.
set -euo pipefail
DATA_DIR=${DATA_DIR:-data/amazon2018}
exec "$(dirname "$0")/pipeline.sh" Luxury_Beauty "$DATA_DIR/Luxury_Beauty.json.gz" "$DATA_DIR/meta_Luxury_Beauty.json.gz"
