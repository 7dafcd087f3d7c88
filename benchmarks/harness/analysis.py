"""From the workers' raw results to a report: rows pooled over rounds, FLOP rates and the targets."""

from __future__ import annotations

import statistics

from harness.rows import BACKBONES, PAIRED_ROWS


def paired(rows: dict, a: str, b: str, fn) -> list[float]:
    """``fn(round of a, round of b)`` for every round in which both rows were measured."""
    ra, rb = rows.get(a), rows.get(b)
    if not ra or not rb:
        return []
    by_round = {r["round"]: r for r in rb.get("rounds", []) if "images_per_s" in r}
    return [fn(r, by_round[r["round"]]) for r in ra.get("rounds", []) if "images_per_s" in r and r["round"] in by_round]


def _flop_rates(row: dict, ok: list[dict], peaks: dict | None) -> None:
    """Achieved GFLOP/s (FlopCounterMode FLOPs of one step / median step time) and its fraction of
    the machine's best matmul peak (over fp32 and bf16) and of the peak at the row's own precision."""
    flops = next((r["flops_per_step"] for r in ok if r.get("flops_per_step")), None)
    row["flops_per_step"] = flops
    if not flops:
        row["flops_error"] = next((r.get("flops_error") for r in ok if r.get("flops_error")), None)
        return
    row["achieved_gflops"] = flops / row["step_s_median"] / 1e9
    if peaks:
        row["peak_fraction_best"] = row["achieved_gflops"] / peaks["best_gflops"]
        own = peaks["gflops"].get(row["precision"])
        row["peak_fraction_own_precision"] = row["achieved_gflops"] / own if own else None


def aggregate(spec: dict, rounds: list[dict], peaks: dict | None = None) -> dict:
    keys = ("key", "kind", "label", "backbone", "shape", "batch", "warmup", "timed", "precision", "compile")
    row = {k: spec.get(k) for k in keys}
    for k in ("preset", "overrides", "workers"):
        if k in spec:
            row[k] = spec[k]
    row["rounds"] = rounds
    ok = [r for r in rounds if "images_per_s" in r]
    if not ok:
        row["error"] = rounds[-1].get("error", "no measurement") if rounds else "not run"
        return row
    steps = [t for r in ok for t in r["step_s"]]
    row["step_s_median"] = statistics.median(steps)
    row["images_per_s"] = spec["batch"] / row["step_s_median"]
    row["images_per_s_per_round"] = [round(r["images_per_s"], 2) for r in ok]
    row["phases_ms_median"] = {
        k: statistics.median(v for r in ok for v in r["phases_ms"][k]) for k in ok[0]["phases_ms"]
    }
    row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ok)
    row["peak_rss_children_mb"] = max(r["peak_rss_children_mb"] for r in ok)
    row["cpu_utilisation"] = statistics.median(r["cpu_utilisation"] for r in ok)
    row["foreign_cpu_fraction_max"] = max(r["foreign_cpu_fraction"] + r["steal_fraction"] for r in ok)
    row["contended"] = any(r["contended"] for r in ok)
    row["params"] = ok[0]["params"]
    row["versions"] = ok[0]["versions"]
    row["timed_via"] = ok[0].get("timed_via", "direct steps")
    _flop_rates(row, ok, peaks)
    return row


def evaluate_targets(rows: list[dict], same_process: list[dict]) -> list[dict]:
    """The issue's targets per backbone. SimCLR vs bare and VSimCLR vs SimCLR come from the same-process
    interleaved measurement (median of the per-iteration ratios of adjacent steps); probssl vs the
    peer (another process, another venv) from the median over rounds of round-paired ratios."""
    by_key = {r["key"]: r for r in rows if "images_per_s" in r}
    targets = []
    for bb in BACKBONES:
        ab = next((p for p in same_process if p["backbone"] == bb and "step_s" in p), None)
        if ab:
            t = dict(zip(ab["keys"], ab["step_s"]))
            bare, simclr, vsimclr = (t.get(f"{bb}/{n}") for n in PAIRED_ROWS)
            for name, values, threshold, ok in (
                (
                    "SimCLR step >= 0.85x bare backbone",
                    [b / s for b, s in zip(bare, simclr)],
                    0.85,
                    lambda v: v >= 0.85,
                ),
                (
                    "VSimCLR costs <= 5% more than SimCLR",
                    [v / s - 1 for v, s in zip(vsimclr, simclr)],
                    0.05,
                    lambda v: v <= 0.05,
                ),
            ):
                v = statistics.median(values)
                targets.append(
                    {
                        "backbone": bb,
                        "target": name,
                        "value": round(v, 3),
                        "source": "same process",
                        "per_step": [round(x, 3) for x in values],
                        "threshold": threshold,
                        "met": ok(v),
                        "contended": ab["contended"],
                    }
                )
        peer = next((k for k in by_key if k.startswith(f"{bb}/peer-") and "@" not in k), None)  # fp32 row
        if peer and f"{bb}/simclr" in by_key:
            values = paired(by_key, f"{bb}/simclr", peer, lambda a, b: a["images_per_s"] / b["images_per_s"])
            v = statistics.median(values)
            targets.append(
                {
                    "backbone": bb,
                    "target": f"probssl SimCLR >= 2x the peer ({by_key[peer]['kind']})",
                    "value": round(v, 3),
                    "source": "rounds",
                    "per_round": [round(x, 3) for x in values],
                    "threshold": 2.0,
                    "met": v >= 2.0,
                    "contended": by_key[f"{bb}/simclr"]["contended"] or by_key[peer]["contended"],
                }
            )
    return targets
