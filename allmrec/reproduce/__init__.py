"""``allmrec reproduce``: the paper's experiments for one prepared dataset, as one resumable command.

:mod:`.budgets` (how much each cell trains and scores) → :mod:`.plan` (steps and tables) → :mod:`.runner` (run
the steps not done yet) → :mod:`.report` (``report.md`` / ``report.html`` / figures).
"""

from .budgets import BUDGETS, ReproduceBudget, get_budget
from .plan import TABLES, Plan, build_plan

__all__ = ["BUDGETS", "ReproduceBudget", "get_budget", "TABLES", "Plan", "build_plan"]
