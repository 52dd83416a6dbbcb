"""Publishing: the model-card template and push tooling (see ARCHITECTURE.md)."""
