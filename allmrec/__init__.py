"""allmrec: A-LLMRec (Kim et al., KDD 2024) as a pip-installable Hugging Face package.

Pipeline: ``data`` (preprocessing, candidate sets) → ``cf`` (frozen CF backbone) → ``alignment``
(stage 1: collaborative ↔ text) → ``model`` (stage 2: frozen LLM with soft tokens) →
``evaluation`` → ``hub``. See ARCHITECTURE.md.
"""

__version__ = "0.1.0"
