"""The report as JSON (everything) and Markdown (the tables docs/benchmarks.md quotes)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from harness.analysis import paired
from harness.rows import VIEWS


def _machine_lines(report: dict) -> list[str]:
    m, s = report["machine"], report["settings"]
    lb = m["load_before"]["load_avg"]
    bf16 = m["cpu_bf16"]
    flags = ", ".join(bf16["flags"]) or "none"
    peaks = m["matmul_peaks"]
    peak_text = ", ".join(f"{p} {g:.1f}" for p, g in peaks["gflops"].items())
    return [
        "# probssl training throughput",
        "",
        f"`{report['command']}` -- {m['date']}, {m['cpu_model']}, {m['cores']} cores, torch {m['torch']}, "
        f"{m['threads']} threads, precision {'/'.join(s['precisions'])}{', torch.compile rows' if s['compile'] else ''}, "
        f"batch {s['batch']} images x {VIEWS} views. Load average (1/5/15 min) before: "
        f"{lb[0]:.2f} / {lb[1]:.2f} / {lb[2]:.2f}, after: {' / '.join(f'{x:.2f}' for x in m['load_after'])}.",
        "",
        f"CPU bf16 flags: {flags} ({'native' if bf16['native_bf16'] else 'no native bf16: bf16 is emulated'}); "
        f"torch CPU capability {m['torch_cpu_capability']}, AMX tile (torch) {m['torch_amx_tile']}. "
        f"Matmul peak (best of sizes {', '.join(f'{n}²' for n in peaks['sizes'])}; {peaks['threads']} threads), "
        f"GFLOP/s: {peak_text}; "
        f"best: {peaks['best_precision']}.",
        "",
        "images/s = batch images (each seen as 2 views) / median step time after warm-up, pooled over "
        "the rounds; x bare = median over rounds of the row's rate / the fp32 bare backbone's in the same "
        "round. GFLOP/s = forward+backward FLOPs of one step (torch.utils.flop_counter.FlopCounterMode: "
        "matmuls and convolutions) / median step time; % peak = that / the best matmul peak above.",
        "",
        "| config | views | images/s | range over rounds | ms/step | x bare backbone | GFLOP/step | GFLOP/s "
        "| % peak | peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]


def _row_line(r: dict, rows: dict) -> str:
    name = f"{r['backbone']} · {r['label']}"
    if "images_per_s" not in r:
        return f"| {name} | {VIEWS} | error: {r.get('error', '')[:80]} | | | | | | | |"
    ratios = paired(rows, r["key"], f"{r['backbone']}/bare", lambda a, b: a["images_per_s"] / b["images_per_s"])
    ratio = f"{statistics.median(ratios):.2f}" if ratios else "n/a"
    rss = f"{r['peak_rss_mb']:.0f}"
    if r["kind"].startswith("peer") and r.get("peak_rss_children_mb", 0) > 1:
        rss += f" (+ {r['workers']} workers, {r['peak_rss_children_mb']:.0f} each)"
    flag = " †" if r.get("contended") else ""
    per_round = r["images_per_s_per_round"]
    spread = f"{min(per_round):.1f}-{max(per_round):.1f}" if len(per_round) > 1 else "(1 round)"
    if r.get("flops_per_step"):
        frac = r.get("peak_fraction_best")
        flops = f"{r['flops_per_step'] / 1e9:.1f} | {r['achieved_gflops']:.1f} | " + (
            f"{100 * frac:.0f}" if frac is not None else "n/a"
        )
    else:
        flops = "n/a | n/a | n/a"
    return (
        f"| {name}{flag} | {VIEWS} | {r['images_per_s']:.1f} | {spread} | {1e3 * r['step_s_median']:.0f} | "
        f"{ratio} | {flops} | {rss} |"
    )


def _same_process_lines(report: dict) -> list[str]:
    if not report.get("same_process"):
        return []
    lines = [
        "",
        "Same process, steps interleaved (bare, SimCLR, VSimCLR, then rotated), one A/B per precision, which "
        "cancels the machine's drift and per-process effects out of the ratios:",
        "",
        "| backbone | precision | timed steps each | bare img/s | SimCLR img/s | VSimCLR img/s |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for p in report["same_process"]:
        if "images_per_s" in p:
            rates = dict(zip((k.split("/", 1)[1].split("@", 1)[0] for k in p["keys"]), p["images_per_s"]))
            cells = [f"{rates[n]:.1f}" if n in rates else "–" for n in ("bare", "simclr", "vsimclr")]
            lines.append(
                f"| {p['backbone']}{' †' if p.get('contended') else ''} | {p.get('precision', 'fp32')} | "
                f"{p['timed']} | " + " | ".join(cells) + " |"
            )
    return lines


def _target_lines(report: dict) -> list[str]:
    lines = ["", "| backbone | target | measured | from | verdict |", "| --- | --- | ---: | --- | --- |"]
    for t in report["targets"]:
        verdict = ("met" if t["met"] else "MISSED") + (" (contended)" if t["contended"] else "")
        if t.get("for") and not t.get("this_cpu_has_amx"):
            verdict += f" (a target for a {t['for']}; this CPU has none)"
        if t["source"] == "same process":
            source = "median of per-step ratios, same process"
        elif t["source"] == "row":
            source = "the row's achieved GFLOP/s / peak"
        else:
            source = "median of round-paired ratios (" + ", ".join(f"{x:.2f}" for x in t["per_round"]) + ")"
        lines.append(f"| {t['backbone']} | {t['target']} | {t['value']:.3f} | {source} | {verdict} |")
    return lines


def markdown(report: dict) -> str:
    s = report["settings"]
    rows = {r["key"]: r for r in report["results"]}
    lines = _machine_lines(report) + [_row_line(r, rows) for r in report["results"]]
    lines += [
        "",
        "Steps per row (warm-up + timed) x rounds: "
        + "; ".join(f"{bb} {v['warmup']} + {v['timed']} x {v['rounds']}" for bb, v in s["steps"].items())
        + ".",
    ]
    if not report["machine"]["cpu_bf16"]["native_bf16"] and any(r.get("precision") == "bf16" for r in rows.values()):
        lines += ["", "bf16 rows on this CPU run emulated bf16 kernels: their slowness is a correct measurement."]
    if any(r.get("contended") for r in report["results"]):
        lines += [
            "",
            f"† other processes used > {100 * s['max_foreign']:.0f}% of the cores while this row was "
            "timed (even after a re-measurement): its figure is polluted.",
        ]
    lines += _same_process_lines(report) + _target_lines(report)
    return "\n".join(lines) + "\n"


def write_report(out: Path, report: dict) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(report, indent=1) + "\n")
    md = markdown(report)
    (out / "throughput.md").write_text(md)
    return md
