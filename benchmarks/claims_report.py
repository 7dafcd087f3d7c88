"""Reading the claims suite's committed records and judging them (issue #16): the tables (mean ± s.e. over the
recorded seeds), each claim's verdict with its numbers, the evidence for each config's default score and which rows
are complete, written by ``report`` as ``--out``.json/.md (and, with ``--docs``, the page's block through
``claims_docs``).

``benchmarks/claims.py`` runs the suite and writes one record per run; it imports this module, never the reverse.
The suite's configs (``CONFIGS`` and the names around it) are defined here because both sides read them: claims.py
to train and record a config, this module to name a record's config, its preset's default score and its claims.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "harness"))
sys.path.insert(0, str(HERE))
import claims_docs  # noqa: E402
from machine import machine_info  # noqa: E402
from uncertainty import built, default_score, mean_se, posterior_score  # noqa: E402

# ----------------------------------------------------------------------------------------------- the suite

OTHER = {"mnist": "fashion-mnist", "fashion-mnist": "mnist", "digits": "noise"}
SCL_BITS = (32, 64, 128, 256, 512)
SUPERVISED = {"supcon", "vsupcon"}  # use the labels while pretraining: marked wherever they appear
# The epistemic head (method.epistemic: a Gaussian fitted to the backbone features when training ends; no weight
# changes) on every probabilistic method, so each record has its `epistemic` score beside the family's: the 20-epoch
# evidence for the default scores. It became SCL's and the VAE family's default on this evidence (as VSimCLR's
# before); the override stays so that records made before and after that change name the same configuration.
# The deterministic methods (SimCLR, SupCon, MoCo, VICReg) carry the same label-free head, so VCL's uncertainty can
# be compared with SimCLR's on one score: the representations, not the scores, differ (their default stays the kNN
# distance; `library_default` reads each preset without this override).
EPISTEMIC = ["method.epistemic=true"]
# label -> (preset template, overrides), in the order a suite runs them: the pairs the claims need first, so a
# suite stopped early still judges the most.
CONFIGS: dict[str, tuple[str, list[str]]] = {
    "simclr": ("simclr-{d}", EPISTEMIC),  # the deterministic methods carry the head too: see EPISTEMIC
    "vsimclr": ("vsimclr-{d}", []),
    "scl-bernoulli": ("scl-bernoulli-{d}", EPISTEMIC),  # its default code is 128 bits
    "simvae": ("simvae-{d}", EPISTEMIC),
    "vae": ("vae-{d}", EPISTEMIC),
    "vsimclr-paper": ("vsimclr-paper-{d}", []),  # the paper's Gaussian KL, as the reviewers describe it
    "supcon": ("supcon-{d}", EPISTEMIC),
    "vsupcon": ("vsupcon-{d}", []),
    "scl-gaussian": ("scl-gaussian-{d}", EPISTEMIC),
    "moco": ("moco-{d}", EPISTEMIC),
    "vicreg": ("vicreg-{d}", EPISTEMIC),
    "beta-vae": ("beta-vae-{d}", EPISTEMIC),
    "cr-vae": ("cr-vae-{d}", EPISTEMIC),
    **{f"scl-bits-{b}": ("scl-bernoulli-{d}", [f"method.latent_dim={b}", *EPISTEMIC]) for b in SCL_BITS if b != 128},
}
BITS_CONFIGS = {b: "scl-bernoulli" if b == 128 else f"scl-bits-{b}" for b in SCL_BITS}  # code size -> its config
ROW_KEYS = ("linear_acc", "knn_acc", "embedding_effective_rank", "mi_lb_bits", "compression_ratio")


# ----------------------------------------------------------------------------------------------- aggregation


def present_mean_se(values: list[float | None]) -> dict | None:
    """``uncertainty.mean_se`` of the values a run recorded (None and NaN left out); None when there are none."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return mean_se(present) if present else None


SHAPES = {"digits": (1, 8, 8)}  # the image shape a config's method is built for (else MNIST's)


def shipped(label: str, dataset: str) -> tuple:
    """(preset, overrides, image shape) of a config's preset as probssl ships it: the config's overrides without
    ``EPISTEMIC`` (the head is the suite's, the default the preset's; the head changes neither the method's class
    nor its posterior's own score)."""
    preset, overrides = CONFIGS[label]
    as_shipped = [o for o in overrides if o not in EPISTEMIC]
    return preset.format(d=dataset), as_shipped, SHAPES.get(dataset, (1, 28, 28))


def library_default(label: str, dataset: str) -> str:
    """The score this probssl reports by default for a config's runs (``uncertainty.default_score`` of its preset
    as shipped); a record keeps the one it was evaluated with as ``primary_score``, which changes when a default
    does."""
    return default_score(*shipped(label, dataset))


def library_posterior(label: str, dataset: str) -> str | None:
    """The posterior's own score of a config's method (``uncertainty.posterior_score``); None if deterministic."""
    return posterior_score(*shipped(label, dataset))


def flat_numbers(rec: dict) -> dict[str, float]:
    """Every number a claim or table reads, flat: the summary, the default score's uncertainty metrics under
    ``default/`` (each method's own default score: the one a user of that method gets), and the posterior's own
    score's under ``posterior/`` (VCL's or SCL's distribution, without the epistemic head)."""
    out = dict(rec["summary"])
    primary = library_default(rec["config"], rec["dataset"])
    posterior = library_posterior(rec["config"], rec["dataset"])
    for name, metrics in rec.get("scores", {}).items():
        for k, v in metrics.items():
            out[f"{name}/{k}"] = v
            if name == primary:
                out[f"default/{k}"] = v
            if name == posterior:
                out[f"posterior/{k}"] = v
    return out


def load_table(records: Path, dataset: str) -> tuple[dict[str, dict[str, dict]], dict[str, dict]]:
    """({config: {metric: mean_se}}, {config: {"seeds", "budget", "precision", "supervised"}}) over the records."""
    table, meta = {}, {}
    for label in CONFIGS:
        recs = [json.loads(p.read_text()) for p in sorted((records / dataset / label).glob("seed*.json"))]
        if not recs:
            continue
        rows = [flat_numbers(r) for r in recs]
        table[label] = {k: present_mean_se([r.get(k) for r in rows]) for k in sorted(set().union(*rows))}
        meta[label] = {
            "seeds": [r["seed"] for r in recs],
            "budget": sorted({f"{r['budget']['epochs']} ep x {r['budget']['train_images']} img" for r in recs}),
            "precision": sorted({str(r["precision"]) for r in recs}),
            "supervised": label in SUPERVISED,
            "primary_score": library_default(label, dataset),
            "evaluated_with": sorted({str(r.get("primary_score")) for r in recs}),
        }
    return table, meta


# ---------------------------------------------------------------------------------------------------- claims


def compare(table: dict, text: str, left: tuple[str, str], right: tuple[str, str], margin: float = 0.0) -> dict:
    """One claim "left > right - margin": the two mean +- s.e., their difference and the verdict ("supported" when
    the mean difference exceeds -margin; "(within 2 s.e.)" when it is closer to -margin than twice its s.e.;
    "(1 seed: no s.e.)" when a side has a single seed; a tie when the means agree to 4 decimals)."""
    a, b = table.get(left[0], {}).get(left[1]), table.get(right[0], {}).get(right[1])
    if a is None or b is None:
        return {"claim": text, "verdict": "not measured", "numbers": {}}
    diff = a["mean"] - b["mean"]
    se = math.sqrt((a["se"] or 0.0) ** 2 + (b["se"] or 0.0) ** 2)
    verdict = "supported" if diff > -margin else "not supported"
    if round(a["mean"], 4) == round(b["mean"], 4) and margin == 0:  # equal as the tables print them (4 decimals)
        verdict = "tie (equal means to 4 decimals: neither is better)"
    elif min(a["n"], b["n"]) < 2:
        verdict += " (1 seed: no s.e.)"
    elif abs(diff + margin) < 2 * se:
        verdict += " (within 2 s.e.)"
    return {
        "claim": text,
        "verdict": verdict,
        "numbers": {f"{left[0]}:{left[1]}": cell(a), f"{right[0]}:{right[1]}": cell(b), "difference": f"{diff:+.4f}"},
    }


def shown(label: str) -> str:
    """A config as a claim names it: "(supervised)" marks the methods that pretrain with the labels."""
    return label + (" (supervised)" if label in SUPERVISED else "")


# The projected normal's default score when the 2-epoch suite ran (sqrt(mean sigma^2) / ||m||); log det K replaced it
# as the posterior's own score on the 1-epoch uncertainty suites (docs/uncertainty.md).
TWO_EPOCH_POSTERIOR = "angular_spread"
UNCERTAINTY_CLAIMS = (
    ("ood_auroc/other", "OOD AUROC against the other dataset"),
    ("ood_auroc/noise", "OOD AUROC against uniform noise"),
    ("misclf_auroc", "misclassification AUROC"),
)


def vcl_claims(table: dict) -> list[dict]:
    """VCL's claims, VSimCLR (both KLs) against SimCLR and VSupCon against SupCon: accuracy, collapse, I(Z;Y); the
    uncertainty as its users get it (each method's default score, VCL's being the epistemic head), on one score (the
    same head on both: does VCL's representation carry better uncertainty?), and the VCL posterior's own score
    against the deterministic method's kNN distance: log det K (its posterior score now) and the angular spread
    (the score the 2-epoch suite checked)."""
    out = []
    for v, d in (("vsimclr", "simclr"), ("vsimclr-paper", "simclr"), ("vsupcon", "supcon")):
        for key, what in (
            ("linear_acc", "linear accuracy"),
            ("embedding_effective_rank", "effective rank of the embedding (less dimensional collapse)"),
            ("mi_lb_bits", "I(Z;Y) lower bound (bits)"),
        ):
            out.append(compare(table, f"VCL: {shown(v)} {what} > {shown(d)}", (v, key), (d, key)))
        for key, what in UNCERTAINTY_CLAIMS:
            text = f"VCL: {shown(v)} {what}, each method's default score > {shown(d)}"
            out.append(compare(table, text, (v, f"default/{key}"), (d, f"default/{key}")))
        for key, what in UNCERTAINTY_CLAIMS:
            text = f"VCL: {shown(v)} {what}, the same label-free head's score (epistemic) on both > {shown(d)}"
            out.append(compare(table, text, (v, f"epistemic/{key}"), (d, f"epistemic/{key}")))
        for key, what in UNCERTAINTY_CLAIMS:
            text = f"VCL: {shown(v)} {what}, its posterior's own score (log det K) > {shown(d)}'s kNN distance"
            out.append(compare(table, text, (v, f"posterior/{key}"), (d, f"knn_distance/{key}")))
        for key, what in UNCERTAINTY_CLAIMS:
            text = (f"VCL: {shown(v)} {what}, the 2-epoch suite's posterior score ({TWO_EPOCH_POSTERIOR}) > "
                    f"{shown(d)}'s kNN distance (2-epoch claim)")  # fmt: skip
            out.append(compare(table, text, (v, f"{TWO_EPOCH_POSTERIOR}/{key}"), (d, f"knn_distance/{key}")))
    return out


def scl_claims(table: dict, margin: float = 0.02) -> list[dict]:
    out = [compare(table, "SCL: scl-gaussian linear accuracy >= simclr", ("scl-gaussian", "linear_acc"),
                   ("simclr", "linear_acc"))]  # fmt: skip
    ratio = (table.get("scl-bernoulli", {}).get("compression_ratio") or {}).get("mean", float("nan"))
    out.append(
        compare(table, f"SCL: the 128-bit code ({ratio:.0f}x compression) keeps simclr's linear accuracy within "
                f"{margin:.2f}", ("scl-bernoulli", "linear_acc"), ("simclr", "linear_acc"), margin=margin)
    )  # fmt: skip
    for b, label in BITS_CONFIGS.items():
        out.append(compare(table, f"SCL: a {b}-bit code > simclr's features stored in {b} bits",
                           (label, "linear_acc"), ("simclr", f"quantized_acc@{b}bits")))  # fmt: skip
    return out


def simvae_claims(table: dict, style_dim: int) -> list[dict]:
    out = [
        compare(table, f"SimVAE: simvae content (linear accuracy) > {o}", ("simvae", "linear_acc"), (o, "linear_acc"))
        for o in ("vae", "beta-vae", "cr-vae")
    ]
    tasks = sorted(
        {k.split("/", 1)[1] for rows in table.values() for k in rows if k.startswith(f"style_acc@{style_dim}d/")}
    )
    for other in ("simclr", "vicreg", "moco"):
        for task in tasks:
            key = f"style_acc@{style_dim}d/{task}"
            out.append(compare(table, f"SimVAE: simvae keeps more {task} than {other} (at {style_dim} dims)",
                               ("simvae", key), (other, key)))  # fmt: skip
    for task in tasks:  # the 2-epoch suite's comparison: each representation at its own size (SimCLR's 128-d)
        key = f"style_acc/{task}"
        out.append(compare(table, f"SimVAE: simvae keeps more {task} than simclr (each at its own size; 2-epoch claim)",
                           ("simvae", key), ("simclr", key)))  # fmt: skip
    return out


STYLE_TASKS = ("brightness", "rotation", "scale", "thickness", "translation_x")  # the 2-epoch suite's style probes


def two_epoch_counterparts(dataset: str) -> dict[str, str]:
    """{a claim of the 2-epoch suite (``benchmarks/results/reproduce-DATASET.json``): this suite's claim that checks
    it the same way}: the pairs the docs' "what changed" table sets side by side."""
    out = {}
    for v, d in (("vsimclr", "simclr"), ("vsupcon", "supcon")):
        same = f"VCL: {shown(v)} {{}} > {shown(d)}"
        out[f"{v} linear accuracy >= {d}"] = same.format("linear accuracy")
        out[f"{v} effective rank (embedding) > {d} (less dimensional collapse)"] = same.format(
            "effective rank of the embedding (less dimensional collapse)"
        )
        out[f"{v} I(Z;Y) (classifier bound, bits) > {d}"] = same.format("I(Z;Y) lower bound (bits)")
        posterior = (f"VCL: {shown(v)} {{}}, the 2-epoch suite's posterior score ({TWO_EPOCH_POSTERIOR}) > "
                     f"{shown(d)}'s kNN distance (2-epoch claim)")  # fmt: skip
        out[f"{v} posterior uncertainty detects OOD ({OTHER[dataset]}) better than {d}'s kNN-distance score"] = (
            posterior.format("OOD AUROC against the other dataset")
        )
        out[f"{v} posterior uncertainty detects errors better than {d}'s kNN-distance score"] = posterior.format(
            "misclassification AUROC"
        )
    out["scl-bernoulli bits keep simclr's linear accuracy (within 0.02) at a 49x compression of the image"] = (
        "SCL: the 128-bit code (49x compression) keeps simclr's linear accuracy within 0.02"
    )
    for o in ("vae", "beta-vae", "cr-vae"):
        out[f"simvae content (linear accuracy) > {o}"] = f"SimVAE: simvae content (linear accuracy) > {o}"
    for t in STYLE_TASKS:
        out[f"simvae keeps more style than simclr: style_acc/{t}"] = (
            f"SimVAE: simvae keeps more {t} than simclr (each at its own size; 2-epoch claim)"
        )
    return out


def two_epoch_claims(results: Path, datasets: list[str]) -> dict[str, list[dict]]:
    """{dataset: the 2-epoch suite's verdicts}, for the datasets whose reproduce-DATASET.json is committed."""
    found = {d: results / f"reproduce-{d}.json" for d in datasets}
    return {d: json.loads(p.read_text())["claims"] for d, p in found.items() if p.exists()}


# ---------------------------------------------------------------------------------------------------- report


def cell(x: dict | None) -> str:
    """A report cell: mean ± s.e. to 4 decimals."""
    return claims_docs.number(x, 4)


markdown_table = claims_docs.table


UNCERTAINTY_COLUMNS = [
    ("ood_auroc/other", "OOD other"),
    ("ood_auroc/noise", "OOD noise"),
    ("misclf_auroc", "misclf."),
    ("r_auroc/other", "R-AUROC zero-shot"),
    ("blend_rho", "blend ρ"),
    ("corruption_rho", "corruption ρ"),
]


def dataset_section(dataset: str, table: dict, meta: dict, verdicts: list[dict], args) -> list[str]:
    lines = [f"## {dataset}", ""]
    header = ["config", "seeds", "budget", "precision", *ROW_KEYS]
    rows = [[shown(c), str(meta[c]["seeds"]), "; ".join(meta[c]["budget"]), ", ".join(meta[c]["precision"]),
             *(cell(table[c].get(k)) for k in ROW_KEYS)] for c in table]  # fmt: skip
    lines += markdown_table(header, rows) + [
        "",
        f"Uncertainty, each config's default score (OOD other = {OTHER[dataset]}):",
        "",
    ]
    rows = [[shown(c), str(meta[c]["primary_score"]), *(cell(table[c].get(f"default/{k}")) for k, _ in UNCERTAINTY_COLUMNS)]
            for c in table]  # fmt: skip
    lines += markdown_table(["config", "default score", *(h for _, h in UNCERTAINTY_COLUMNS)], rows)
    lines += ["", *claims_docs.style({dataset: table}, {dataset: meta}, args.style_dim, shown=list(table))]
    lines += ["", *claims_docs.bits({dataset: table}, BITS_CONFIGS), "", "Claims:", ""]
    lines += markdown_table(["claim", "verdict", "numbers"],
                            [[v["claim"], v["verdict"], "; ".join(f"{k} {x}" for k, x in v["numbers"].items())] for v in verdicts])  # fmt: skip
    return lines + [""]


ALIASES = {"default", "posterior"}  # flat_numbers' second names of a score, not scores of their own
EVAL_ONLY_SCORES = {"mc_dispersion", "knn_distance", "density"}  # computed by the evaluation, not by the model
TIE_AUROC = 0.01  # worst-set OOD AUROCs closer than this are a tie (one seed's noise)
SIMPLEST = "epistemic"  # one score; `combined` adds z-scored posterior scores, which invert on some sets


def score_stats(tables: dict[str, dict], config: str, score: str) -> dict:
    """One score of one config over every dataset recorded: its OOD AUROC per set ("DATASET/other", ".../noise",
    mean over seeds), their mean and minimum, and the mean misclassification AUROC."""
    sets, misclf = {}, []
    for dataset, table in tables.items():
        row = table.get(config, {})
        for kind in ("other", "noise"):
            if (x := row.get(f"{score}/ood_auroc/{kind}")) is not None:
                sets[f"{dataset}/{kind}"] = x["mean"]
        if (x := row.get(f"{score}/misclf_auroc")) is not None:
            misclf.append(x["mean"])
    return {
        "ood_by_set": sets,
        "mean_ood": sum(sets.values()) / len(sets) if sets else None,
        "min_ood": min(sets.values()) if sets else None,
        "misclf": sum(misclf) / len(misclf) if misclf else None,
    }


def worst_set_choice(stats: dict[str, dict], candidates: list[str], preferred: list[set[str]]) -> str:
    """The rule both score choices share: among ``candidates`` (:func:`score_stats` each), those within
    ``TIE_AUROC`` of the highest worst-set OOD AUROC; of these, one in the first of ``preferred``'s sets, else in the
    next, ..., else the higher mean."""
    best = max(stats[n]["min_ood"] for n in candidates)
    tied = [n for n in candidates if stats[n]["min_ood"] >= best - TIE_AUROC]
    return max(tied, key=lambda n: (*(n in names for names in preferred), stats[n]["mean_ood"]))


def default_rule(tables: dict[str, dict], metas: dict[str, dict]) -> dict[str, dict]:
    """{config: the evidence for its default score}: among the scores the model itself reports (its posterior
    family's and its heads'; not the evaluation's kNN distance, density or MC dispersion, which need the training
    set or its labels at test time) and its current default (a deterministic method's kNN distance), the highest
    worst-set OOD AUROC over every recorded set (a default must not rank some OOD set as more certain than the
    data); within ``TIE_AUROC`` of it, the current default if tied, else ``SIMPLEST``, else the higher mean. ``evaluated_with``: the default(s) the records were evaluated with; ``current``: this
    probssl's default."""
    out = {}
    for config in [c for c in CONFIGS if any(c in t for t in tables.values())]:
        names = {k.split("/ood_auroc/")[0] for t in tables.values() for k in t.get(config, {}) if "/ood_auroc/" in k}
        stats = {n: score_stats(tables, config, n) for n in sorted(names - ALIASES)}
        now = sorted({m[config]["primary_score"] for m in metas.values() if config in m})
        own = [n for n in stats if (n not in EVAL_ONLY_SCORES or n in now) and stats[n]["mean_ood"] is not None]
        if not own:
            continue
        choice = worst_set_choice(stats, own, [set(now), {SIMPLEST}])
        evaluated = sorted({s for m in metas.values() if config in m for s in m[config]["evaluated_with"]})
        out[config] = {"evaluated_with": evaluated, "current": now, "rule": choice, "scores": stats}
    return out


def rule_cells(st: dict | None) -> list[str]:
    """A score's mean OOD AUROC, worst-set OOD AUROC and misclassification AUROC (:func:`score_stats`), as cells."""
    if not st or st["mean_ood"] is None:
        return ["–", "–", "–"]
    return [f"{st['mean_ood']:.3f}", f"{st['min_ood']:.3f}", "–" if st["misclf"] is None else f"{st['misclf']:.3f}"]


def default_rule_section(rule: dict[str, dict]) -> list[str]:
    rows = []
    for config, r in rule.items():
        then = r["evaluated_with"][0] if len(r["evaluated_with"]) == 1 else "/".join(r["evaluated_with"])
        sets = len(r["scores"][r["rule"]]["ood_by_set"])
        rows.append([shown(config), then, *rule_cells(r["scores"].get(then)), r["rule"],
                     *rule_cells(r["scores"][r["rule"]]), *rule_cells(r["scores"].get("knn_distance")), str(sets),
                     "/".join(r["current"])])  # fmt: skip
    head = ["config", "evaluated with", "mean OOD", "min OOD", "misclf.", "rule's choice", "mean OOD", "min OOD"]
    head += ["misclf."]
    text = (
        "Default-score evidence: the default each config's records were evaluated with against the rule's choice "
        "among the scores the model "
        f"reports itself and its current default (the highest worst-set OOD AUROC over the recorded sets; within "
        f"{TIE_AUROC} of it, the current default if tied, else `{SIMPLEST}`, else the higher mean), with the "
        "evaluation's kNN distance for reference:"
    )
    return [text, ""] + markdown_table(
        [*head, "kNN mean OOD", "kNN min OOD", "kNN misclf.", "OOD sets", "default now"], rows
    )


def posterior_kinds(label: str, dataset: str) -> list[str]:
    """The scores a config's posterior reports itself (its family's ``uncertainty_kinds``); [] if deterministic."""
    _, method = built(*shipped(label, dataset))
    return list(method.posterior_class.uncertainty_kinds()) if method.probabilistic else []


def posterior_rule(tables: dict[str, dict]) -> dict[str, dict]:
    """{config: the evidence for its posterior's own score} (``posterior_uncertainty``: what a probabilistic method
    reports without its epistemic head, and what ``combined`` adds to it): :func:`default_rule`'s rule among the
    posterior family's scores only -- the highest worst-set OOD AUROC over every recorded set; within ``TIE_AUROC``
    of it, the current posterior score, else the higher mean."""
    out = {}
    for config in CONFIGS:
        held = [d for d, t in tables.items() if config in t]
        if not held or (current := library_posterior(config, held[0])) is None:
            continue
        stats = {n: score_stats(tables, config, n) for n in posterior_kinds(config, held[0])}
        own = [n for n in stats if stats[n]["mean_ood"] is not None]
        if not own:
            continue
        choice = worst_set_choice(stats, own, [{current}])
        out[config] = {"current": current, "rule": choice, "scores": stats}
    return out


def posterior_rule_section(rule: dict[str, dict]) -> list[str]:
    rows = []
    for config, r in rule.items():
        now, chosen = r["scores"][r["current"]], r["scores"][r["rule"]]
        rows.append([shown(config), r["current"], *rule_cells(now), r["rule"], *rule_cells(chosen),
                     str(len(chosen["ood_by_set"]))])  # fmt: skip
    head = ["config", "posterior score now", "mean OOD", "min OOD", "misclf.", "rule's choice", "mean OOD"]
    head += ["min OOD", "misclf.", "OOD sets"]
    text = (
        "Posterior-score evidence (what a probabilistic method reports without its epistemic head, and what "
        "`combined` adds): the posterior's own score now against the same rule among the posterior family's scores "
        f"only (the highest worst-set OOD AUROC; within {TIE_AUROC} of it, the current one, else the higher mean):"
    )
    return [text, "", *markdown_table(head, rows)]


def reported_datasets(args) -> list[str]:
    """The datasets asked for and every dataset the records folder holds, in OTHER's order: two suite processes
    (one per dataset) both rewrite the report, and neither may drop the other's section."""
    held = {p.name for p in args.records.iterdir() if p.is_dir()} if args.records.is_dir() else set()
    return [d for d in OTHER if d in held or d in args.datasets]


def completeness(args) -> list[str]:
    rows = []
    for dataset in reported_datasets(args):
        for label in args.configs:
            have = sorted(int(p.stem[4:]) for p in (args.records / dataset / label).glob("seed*.json"))
            missing = [s for s in args.seeds if s not in have]
            rows.append([dataset, shown(label), str(have), "complete" if not missing else f"missing seeds {missing}"])
    return markdown_table(["dataset", "config", "recorded seeds", "row"], rows)


def machines(records: Path) -> list[str]:
    """One line per (CPU, precision, torch) the records ran on, with their dates and number of runs."""
    seen: dict[tuple, list[str]] = {}
    for path in sorted(records.rglob("seed*.json")):
        r = json.loads(path.read_text())
        cpu = r.get("cpu") or {}
        bf16 = "native bf16" if cpu.get("native_bf16") else "no native bf16"
        key = (cpu.get("cpu_model", "?"), bf16, cpu.get("cores"), r.get("precision"), r.get("torch"))
        seen.setdefault(key, []).append(r.get("date", "?"))
    return [
        f"- {model} ({bf16}, {cores} cores), {precision}, torch {torch}: {len(dates)} runs, {min(dates)} to {max(dates)}"
        for (model, bf16, cores, precision, torch), dates in seen.items()
    ]


def report(args) -> dict:
    payload = {
        "command": "python benchmarks/claims.py " + " ".join(sys.argv[1:]),
        "machine_now": machine_info(int(os.environ.get("OMP_NUM_THREADS", "2")), {}, {}),
        "epochs": args.epochs,
        "epochs_generative": args.epochs_generative,
        "style_dim": args.style_dim,
        "datasets": {},
    }
    records = args.records.resolve()
    shown = records.relative_to(HERE.parent) if records.is_relative_to(HERE.parent) else records
    lines = ["# The papers' claims at a real budget", "", f"Command: `{payload['command']}`. Records: `{shown}` (one "
             "per run: its budget, seed, precision, CPU, dates and timings). Mean ± s.e. over the recorded seeds; "
             "'(supervised)' marks methods that use the labels while pretraining.", "", *machines(records), ""]  # fmt: skip
    tables, metas = {}, {}
    for dataset in reported_datasets(args):
        table, meta = load_table(args.records, dataset)
        if not table:
            continue
        tables[dataset], metas[dataset] = table, meta
        verdicts = vcl_claims(table) + scl_claims(table) + simvae_claims(table, args.style_dim)
        payload["datasets"][dataset] = {"table": table, "meta": meta, "claims": verdicts}
        lines += dataset_section(dataset, table, meta, verdicts, args)
    payload["default_scores"] = default_rule(tables, metas)
    payload["posterior_scores"] = posterior_rule(tables)
    rules = [*default_rule_section(payload["default_scores"]), "", *posterior_rule_section(payload["posterior_scores"])]
    lines += ["## Default scores", "", *default_rule_section(payload["default_scores"]), ""]
    lines += ["## Posterior scores", "", *posterior_rule_section(payload["posterior_scores"]), ""]
    lines += ["## Completeness", "", *completeness(args), ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.docs:
        posterior = {d: {c: library_posterior(c, d) for c in t} for d, t in tables.items()}
        suite = {"configs": list(CONFIGS), "seeds": args.seeds, "other": OTHER, "posterior": posterior,
                 "style_dim": args.style_dim, "bits_configs": BITS_CONFIGS, "rules": rules}  # fmt: skip
        found = {d: payload["datasets"][d]["claims"] for d in tables}
        before = two_epoch_claims(HERE / "results", list(tables))
        suite["two_epoch"] = {d: (before[d], two_epoch_counterparts(d)) for d in before}
        claims_docs.rewrite(args.docs, claims_docs.block(tables, metas, found, suite))
    write_atomically(args.out.with_suffix(".json"), json.dumps(payload, indent=1) + "\n")
    write_atomically(args.out.with_suffix(".md"), "\n".join(lines))
    return payload


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step: a reader (or the other suite process) never sees half a report."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    partial.replace(path)
