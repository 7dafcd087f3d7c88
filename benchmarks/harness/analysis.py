"""From the workers' raw results to a report: rows pooled over rounds, FLOP rates and the targets."""

from __future__ import annotations

import statistics

from harness.rows import BACKBONES


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


# The targets (#11). `amx` marks the ones set for a CPU with AMX: on any other machine they are
# still measured and reported, labelled as such (they are not this CPU's targets).
BARE_FRACTION = 0.9  # probssl's SimCLR step >= 0.9x the bare backbone in the same precision
VSIMCLR_EXTRA = 0.05  # VSimCLR's step <= 1.05x SimCLR's
PEER_DEFAULT = {"convnet": 2.0, "resnet18-cifar": 2.5}  # best probssl SimCLR / the peer as its users run it
PEER_BF16 = {"resnet18-cifar": 1.5}  # best probssl SimCLR / the peer with bf16 autocast
PEAK_FRACTION = {"resnet18-cifar": 0.35}  # of the best-precision matmul peak
RSS_GROWTH = 0.05  # a bf16 row's peak RSS <= 1.05x its fp32 row's


def _target(bb: str, name: str, values: list[float], threshold: float, higher: bool, source: str, **extra) -> dict:
    v = statistics.median(values)
    return {
        "backbone": bb,
        "target": name,
        "value": round(v, 3),
        "source": source,
        ("per_step" if source == "same process" else "per_round"): [round(x, 3) for x in values],
        "threshold": threshold,
        "met": v >= threshold if higher else v <= threshold,
        **extra,
    }


def _same_process_targets(bb: str, same_process: list[dict]) -> list[dict]:
    """From each same-process A/B of this backbone: SimCLR vs bare in that precision, and (where VSimCLR was in the
    A/B) VSimCLR vs SimCLR."""
    out = []
    for ab in (p for p in same_process if p["backbone"] == bb and "step_s" in p):
        precision = ab.get("precision", "fp32")
        t = {k.split("/", 1)[1].split("@", 1)[0]: v for k, v in zip(ab["keys"], ab["step_s"])}
        extra = {"contended": ab["contended"], "precision": precision}
        bare, simclr = t["bare"], t["simclr"]
        ratios = [b / s for b, s in zip(bare, simclr)]
        name = f"SimCLR step >= {BARE_FRACTION}x bare backbone ({precision})"
        out.append(_target(bb, name, ratios, BARE_FRACTION, True, "same process", **extra))
        if "vsimclr" in t:
            costs = [v / s - 1 for v, s in zip(t["vsimclr"], simclr)]
            name = "VSimCLR costs <= 5% more than SimCLR" + ("" if precision == "fp32" else f" ({precision})")
            out.append(_target(bb, name, costs, VSIMCLR_EXTRA, False, "same process", **extra))
    return out


def best_simclr(by_key: dict, bb: str) -> str | None:
    """The fastest of probssl's SimCLR rows (any precision, eager or compiled) for this backbone."""
    keys = [k for k in by_key if k == f"{bb}/simclr" or k.startswith(f"{bb}/simclr@")]
    return max(keys, key=lambda k: by_key[k]["images_per_s"], default=None)


def _ratio_target(by_key, bb, a, b, name, threshold, higher=True, fn=None, **extra) -> dict | None:
    if a not in by_key or b not in by_key:
        return None
    fn = fn or (lambda x, y: x["images_per_s"] / y["images_per_s"])
    values = paired(by_key, a, b, fn)
    if not values:
        return None
    contended = by_key[a]["contended"] or by_key[b]["contended"]
    return _target(bb, name, values, threshold, higher, "rounds", contended=contended, rows=[a, b], **extra)


def _variant_targets(by_key: dict, bb: str, same_process_suffixes: set[str] = frozenset()) -> list[dict]:
    """SimCLR vs bare in each further precision/compile variant; bf16 rows' memory vs fp32."""
    out = []
    for key in sorted(k for k in by_key if k.startswith(f"{bb}/simclr@")):
        suffix = key.split("@", 1)[1]
        if suffix in same_process_suffixes:
            continue  # judged from the same-process A/B of that precision (cleaner than round-paired ratios)
        out.append(
            _ratio_target(
                by_key,
                bb,
                key,
                f"{bb}/bare@{suffix}",
                f"SimCLR step >= {BARE_FRACTION}x bare ({suffix})",
                BARE_FRACTION,
            )
        )
    for key in sorted(k for k in by_key if k.startswith(f"{bb}/") and "@bf16" in k):
        base = key.replace("@bf16+", "@").replace("@bf16", "")
        out.append(
            _ratio_target(
                by_key,
                bb,
                key,
                base,
                f"peak RSS of {key.split('/', 1)[1]} <= {1 + RSS_GROWTH:.2f}x its fp32 row",
                1 + RSS_GROWTH,
                higher=False,
                fn=lambda x, y: x["peak_rss_mb"] / y["peak_rss_mb"],
            )
        )
    return [t for t in out if t]


def _peer_targets(by_key: dict, bb: str, amx: bool) -> list[dict]:
    best = best_simclr(by_key, bb)
    peer = next((k for k in by_key if k.startswith(f"{bb}/peer-") and "@" not in k), None)
    if not best or not peer:
        return []
    kind = by_key[peer]["kind"]
    label = f" [{best.split('/', 1)[1]}]"
    on_amx = {"for": "CPU with AMX", "this_cpu_has_amx": amx} if bb == "resnet18-cifar" else {}
    out = [
        _ratio_target(
            by_key,
            bb,
            best,
            peer,
            f"best probssl SimCLR >= {PEER_DEFAULT[bb]}x the peer ({kind}){label}",
            PEER_DEFAULT[bb],
            **on_amx,
        ),
        _ratio_target(by_key, bb, f"{bb}/simclr", peer, f"probssl SimCLR fp32 vs the peer fp32 ({kind})", 1.0),
    ]
    if bb in PEER_BF16:
        out.append(
            _ratio_target(
                by_key,
                bb,
                best,
                f"{peer}@bf16",
                f"best probssl SimCLR >= {PEER_BF16[bb]}x the peer with bf16{label}",
                PEER_BF16[bb],
                **on_amx,
            )
        )
    if bb in PEAK_FRACTION and by_key[best].get("peak_fraction_best") is not None:
        f = by_key[best]["peak_fraction_best"]
        out.append(
            {
                "backbone": bb,
                "target": f"best probssl SimCLR >= {PEAK_FRACTION[bb]:.0%} of the best matmul peak{label}",
                "value": round(f, 3),
                "source": "row",
                "per_round": [round(f, 3)],
                "threshold": PEAK_FRACTION[bb],
                "met": f >= PEAK_FRACTION[bb],
                "contended": by_key[best]["contended"],
                **on_amx,
            }
        )
    return [t for t in out if t]


def evaluate_targets(rows: list[dict], same_process: list[dict], amx: bool = False) -> list[dict]:
    """The issue's targets per backbone. SimCLR vs bare (fp32) and VSimCLR vs SimCLR come from the
    same-process interleaved measurement (median of the per-iteration ratios of adjacent steps); every
    other ratio (variants, the peer in another process and venv) from the median over rounds of
    round-paired ratios. ``amx``: whether this CPU has AMX (the ResNet-18 peer and peak targets are set
    for such a CPU and are labelled so elsewhere)."""
    by_key = {r["key"]: r for r in rows if "images_per_s" in r}
    targets = []
    for bb in BACKBONES:
        targets += _same_process_targets(bb, same_process)
        judged = {p.get("precision", "fp32") for p in same_process if p["backbone"] == bb and "step_s" in p}
        targets += _variant_targets(by_key, bb, judged - {"fp32"})
        targets += _peer_targets(by_key, bb, amx)
    return targets
