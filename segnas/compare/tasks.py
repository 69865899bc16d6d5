"""The stages of a comparison as executor tasks (picklable top-level functions of a payload dict).

A task starts its run, or continues it with ``--resume`` where the folder holds a checkpoint (a run that
already finished answers at once), and returns the few numbers the table needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..engine.retrain import retrain
from ..genotype import load as load_genotype
from ..methods import get_method


def _resume(run: Path) -> bool:
    return (run / "checkpoints" / "last.pt").is_file()


def search_task(payload: dict[str, Any]) -> dict[str, Any]:
    """Search ``payload["method"]`` with ``payload["cfg"]`` into ``payload["out"]``: its primary genotype,
    search time (the budget's clock: every run of the search, latency tables included) and budget record."""
    method, run = get_method(payload["method"]), Path(payload["out"])
    resume = _resume(run)
    result = method.search(payload["cfg"], run, resume=resume, progress=payload.get("progress", False))
    genotype = run / f"{method.primary}.json"
    budget = result.get("budget") or {}
    return {"genotype": str(genotype), "archid": load_genotype(genotype).archid,
            "search_s": float(budget.get("elapsed_s", result.get("wall_s", 0.0))),
            "budget_stopped": bool(budget.get("stopped", False)), "budget": budget,
            "resumed": resume, "already_complete": bool(result.get("already_complete"))}


def retrain_task(payload: dict[str, Any]) -> dict[str, Any]:
    """Retrain the genotype file ``payload["genotype"]`` with ``payload["cfg"]`` into ``payload["out"]``: its
    best val mIoU (the one its best checkpoint holds), final mIoU and time."""
    run = Path(payload["out"])
    resume = _resume(run)
    result = retrain(load_genotype(payload["genotype"]), payload["cfg"], run, resume=resume,
                     progress=payload.get("progress", False))
    return {"val_miou": float(result["best_miou"]), "final_miou": float(result["final"]["miou"]),
            "retrain_s": float(result["wall_s"]), "steps": int(result["steps"]), "archid": result["archid"],
            "resumed": resume, "already_complete": bool(result.get("already_complete"))}


__all__ = ["retrain_task", "search_task"]
