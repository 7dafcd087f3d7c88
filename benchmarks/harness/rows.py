"""Which rows a throughput run measures, as plain JSON specs handed to the worker processes."""

from __future__ import annotations

from harness.runners import probssl_config

BATCH = 256
VIEWS = 2
THREADS = 2
PEER_WORKERS = 2

BACKBONES = {
    # name: (image shape, probssl overrides shared by the rows, (warm-up, timed steps, rounds), the same for --quick)
    "convnet": ((1, 28, 28), [], (2, 10, 4), (2, 5, 1)),
    "resnet18-cifar": ((3, 32, 32), ["augment.crop_scale=[0.08, 1.0]", "augment.hflip_p=0.5"], (1, 3, 1), (1, 1, 1)),
}
# Steps (warm-up, timed) of each row in the interleaved same-process measurement; (full, --quick).
PAIRED_STEPS = {"convnet": ((3, 20), (2, 5)), "resnet18-cifar": ((1, 3), (1, 1))}
PAIRED_ROWS = ("bare", "simclr", "vsimclr")
METHODS = [  # (row name, preset, extra overrides)
    ("SimCLR", "simclr-mnist", []),
    ("VSimCLR", "vsimclr-mnist", []),
    ("SCL (Gaussian)", "scl-gaussian-mnist", []),
    ("SCL (Bernoulli)", "scl-bernoulli-mnist", []),
    ("SimVAE", "simvae-mnist", []),
]
# The rows that get the --precision / --compile variants: the limit, probssl's SimCLR and the peer.
VARIANT_ROWS = ("bare", "simclr")
COMMON_OVERRIDES = [
    f"train.batch_size={BATCH}",
    f"train.num_threads={THREADS}",
    "train.device=cpu",
    "train.precision=fp32",  # the row's own precision is appended by ProbsslRunner
    "train.progress=false",
    "train.tensorboard=false",
]


def variant_suffix(precision: str, compiled: bool) -> str:
    """Row-key suffix: '' for the fp32 eager row (its key is unchanged), else '@bf16', '@compile', ..."""
    parts = ([] if precision == "fp32" else [precision]) + (["compile"] if compiled else [])
    return "@" + "+".join(parts) if parts else ""


def variant_label(precision: str, compiled: bool, native_bf16: bool) -> str:
    parts = []
    if precision != "fp32":
        emulated = "" if native_bf16 or precision != "bf16" else ", emulated on this CPU"
        parts.append(f"{precision} autocast{emulated}")
    if compiled:
        parts.append("torch.compile")
    return f" [{'; '.join(parts)}]" if parts else ""


def probssl_augment_params(preset: str, overrides: list[str], shape) -> dict:
    """The augmentation probssl's Trainer would use for this row, as plain values for the peer."""
    import dataclasses

    from probssl.train.trainer import build_augmenter

    params = build_augmenter(probssl_config(preset, overrides), tuple(shape)).params
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(params).items()}


def _method_specs(bb: str, base: dict, bb_overrides: list[str], extra_overrides: list[str]) -> list[dict]:
    specs = []
    for name, preset, extra in METHODS:
        overrides = COMMON_OVERRIDES + [f"model.backbone={bb}"] + bb_overrides + extra + list(extra_overrides)
        specs.append(
            {
                **base,
                "key": f"{bb}/{preset.removesuffix('-mnist')}",
                "kind": "probssl",
                "label": f"probssl {name}",
                "method": name,
                "preset": preset,
                "overrides": overrides,
            }
        )
    return specs


def _peer_spec(bb: str, base: dict, peer: str, peer_python: str | None, simclr: dict) -> dict:
    spec = {
        **base,
        "key": f"{bb}/peer-{peer}",
        "kind": f"peer-{peer}",
        "workers": PEER_WORKERS,
        "augment": probssl_augment_params(simclr["preset"], simclr["overrides"], base["shape"]),
        "temperature": probssl_config(simclr["preset"], simclr["overrides"]).method.temperature,
    }
    if peer == "lightly":
        spec["label"] = f"peer: lightly SimCLR ({PEER_WORKERS}-worker DataLoader)"
        spec["python"] = peer_python
    else:
        spec["label"] = f"peer: per-image PIL SimCLR ({PEER_WORKERS}-worker DataLoader)"
    return spec


def _variants(spec: dict, precisions: list[str], compile_rows: bool, native_bf16: bool) -> list[dict]:
    """The row at each precision (and compiled, for the bare and probssl rows); fp32 eager first."""
    can_compile = compile_rows and not spec["kind"].startswith("peer")  # the peer runs as its users run it
    out = []
    for compiled in (False, True) if can_compile else (False,):
        for precision in precisions:
            out.append(
                {
                    **spec,
                    "key": spec["key"] + variant_suffix(precision, compiled),
                    "label": spec["label"] + variant_label(precision, compiled, native_bf16),
                    "precision": precision,
                    "compile": compiled,
                }
            )
    return out


def row_specs(
    backbones: list[str],
    peer: str,
    quick: bool,
    peer_python: str | None,
    extra_overrides: list[str] | None = None,
    precisions: list[str] | None = None,
    compile_rows: bool = False,
    native_bf16: bool = False,
) -> list[dict]:
    """Per backbone: the bare backbone, the probssl methods, the peer; the bare, SimCLR and peer rows
    also at each further precision in ``precisions`` and, with ``compile_rows``, compiled."""
    precisions = precisions or ["fp32"]
    specs = []
    for bb in backbones:
        shape, bb_overrides, steps, quick_steps = BACKBONES[bb]
        warmup, timed, rounds = quick_steps if quick else steps
        base = {"backbone": bb, "shape": list(shape), "batch": BATCH, "threads": THREADS}
        base.update(warmup=warmup, timed=timed, rounds=rounds, precision="fp32", compile=False)
        bare = {**base, "key": f"{bb}/bare", "kind": "bare", "label": "bare backbone (fwd+bwd+AdamW, pre-made)"}
        methods = _method_specs(bb, base, bb_overrides, extra_overrides or [])
        simclr = methods[0]
        # The limit runs in the memory format probssl's Trainer would pick (auto: NHWC on CPU).
        bare["channels_last"] = probssl_config(simclr["preset"], simclr["overrides"]).model.channels_last
        rows = [bare, *methods]
        if peer != "none":
            rows.append(_peer_spec(bb, base, peer, peer_python, simclr))
        for row in rows:
            name = row["key"].split("/", 1)[1]
            if name in VARIANT_ROWS or row["kind"].startswith("peer"):
                specs += _variants(row, precisions, compile_rows, native_bf16)
            else:
                specs += _variants(row, precisions[:1], False, native_bf16)
    return specs


def paired_specs(specs: list[dict], quick: bool) -> list[dict]:
    """Per backbone and eager precision, the bare backbone, SimCLR and (where it has that variant) VSimCLR measured
    in one process, steps interleaved: fp32 always (the A/B targets' reference), and each further precision of
    the bare and SimCLR rows, so that "SimCLR >= 0.9x bare" is judged the same way in every precision."""
    out = []
    for bb in dict.fromkeys(s["backbone"] for s in specs):
        suffixes = dict.fromkeys(
            s["key"][len(f"{bb}/bare") :] for s in specs if s["key"].startswith(f"{bb}/bare") and not s["compile"]
        )
        for suffix in suffixes:
            members = [next((s for s in specs if s["key"] == f"{bb}/{name}{suffix}"), None) for name in PAIRED_ROWS]
            if None in members[:2] or (not suffix and None in members):
                continue  # fp32 not among --precision: the fp32 A/B needs all three rows
            members = [m for m in members if m is not None]
            warmup, timed = PAIRED_STEPS[bb][1 if quick else 0]
            out.append(
                {
                    "key": f"{bb}/paired{suffix}",
                    "kind": "paired",
                    "backbone": bb,
                    "precision": members[0]["precision"],
                    "batch": BATCH,
                    "threads": THREADS,
                    "warmup": warmup,
                    "timed": timed,
                    "rounds": 1,
                    "members": [{**m, "warmup": warmup, "timed": timed} for m in members],
                    "label": "same-process A/B: " + ", ".join(m["key"].split("/", 1)[1] for m in members),
                }
            )
    return out
