"""Formatting helpers shared by the report and its section renderers."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["cell", "fmt", "keys_with", "slug", "table"]


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 10):
        return f"{int(value)}"
    if isinstance(value, float):  # 4 decimals below 1 (accuracies, AUROCs), 2 up to 100, then 1
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def cell(agg: dict | None) -> str:
    if not agg:
        return "–"
    if agg["n"] == 1 or agg["se"] is None:
        return fmt(agg["mean"])
    return f"{fmt(agg['mean'])} ± {fmt(agg['se'])}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown pipe table; a ``|`` inside a cell (e.g. in a folder name) is escaped so that it stays one cell."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows), ""]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "run"


def keys_with(groups_metrics: dict[str, dict], prefix: str) -> list[str]:
    return sorted({k[len(prefix) :] for g in groups_metrics.values() for k in g if k.startswith(prefix)})
