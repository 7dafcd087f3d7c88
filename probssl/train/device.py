"""Device, precision and ``torch.compile`` selection, chosen by the hardware in front of the code.

``train.precision=auto`` used to mean "bf16 on CUDA, fp32 on CPU". That is right for CPUs that emulate
bf16 (this project's 2-core AMD EPYC runs a 512x512 bf16 matmul 13-17x slower than fp32) but wrong for
Intel Xeons with AMX-BF16, where a bf16 matmul runs ~7.6x faster than fp32. So on CPU, auto now asks two questions:
does the CPU *advertise* native bf16 (:func:`cpu_bf16_capability`, free), and does a short matmul timing
*confirm* it (:func:`bf16_matmul_probe`, < 1 s, cached on disk)? Flags alone are not trusted: what
counts is whether this torch build's kernels are fast on this machine, and only a timing says that.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from ..data.paths import CACHE_ENV_VAR, cache_dir  # noqa: F401  (CACHE_ENV_VAR: re-exported)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# Why 1.5x: convolutions and matmuls are ~85 % of the convnet step's self CPU (docs/benchmarks.md,
# profile), so by Amdahl a 1.5x matmul gain is at most ~1.4x on the step, less after autocast's casts
# and the fp32 parts (augmentation, optimiser). Below that the gain sinks into this machine class's
# run-to-run noise (+-25 % between processes) and does not pay for bf16's 8-bit mantissa. A judgement
# from those two numbers, not a measured optimum; AMX-BF16 (~7.6x) clears it, emulated bf16 (0.06-0.08x here) not.
BF16_MIN_SPEEDUP = 1.5

# /proc/cpuinfo flags that matter for bf16: AMX tiles with bf16 (Sapphire Rapids and later),
# AVX512-BF16 dot products (Cooper Lake, Zen 4), AVX512F (the fallback path oneDNN would use),
# and aarch64's 'bf16' feature (Armv8.6 BFMMLA / BFDOT).
BF16_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "bf16")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")
PROBE_ENV_VAR = "PROBSSL_PRECISION_PROBE"  # "0": never read or write the on-disk probe cache
PROBE_CACHE_FILE = "precision-probe.json"
PROBE_BUDGET_S = 0.1  # per dtype; one call past it ends the timing, so the probe stays < 0.5 s even if emulated

_probe_memo: dict[str, dict] = {}  # per process, on top of the disk cache


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # fp32 | bf16 | fp16
    reason: str  # one line, for the run log: why this precision


@dataclasses.dataclass(frozen=True)
class CompileChoice:
    enabled: bool
    reason: str


def select_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name} but CUDA is not available on this machine; use auto or cpu")
    return device


# ---------------------------------------------------------------------------------------------- CPU facts


def parse_cpuinfo(text: str) -> tuple[str, set[str]]:
    """(model name, flags) of the first processor in a /proc/cpuinfo text."""
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:  # x86 says flags, aarch64 says Features
            flags = set(value.split())
    return model, flags


def _read_cpuinfo() -> tuple[str, set[str]]:
    try:
        model, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:  # not Linux
        model, flags = "", set()
    return model or platform.processor() or "unknown", flags


def cpu_flags() -> list[str]:
    """Every flag /proc/cpuinfo lists for the first CPU, sorted (empty where there is no /proc/cpuinfo)."""
    return sorted(_read_cpuinfo()[1])


@functools.lru_cache(maxsize=1)
def cpu_bf16_capability() -> dict:
    """What the CPU advertises about bf16 (no timing; cached for the process)."""
    model, flags = _read_cpuinfo()
    if platform.machine().lower() not in ("aarch64", "arm64"):
        flags.discard("bf16")  # only aarch64's 'bf16' means bf16 arithmetic
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # informational only
        capability = "unknown"
    amx_check = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private: may vanish in a release
    try:
        amx_tile = bool(amx_check()) if amx_check is not None else None
    except Exception:
        amx_tile = None
    relevant = sorted(f for f in flags if f in BF16_FLAGS)
    native = [f for f in NATIVE_BF16_FLAGS if f in flags]
    if not native and amx_tile and not flags:  # no /proc/cpuinfo (not Linux): trust torch's AMX check
        native = ["amx_tile (torch)"]
    return {
        "cpu_model": model,
        "machine": platform.machine(),
        "flags": relevant,
        "torch_cpu_capability": capability,
        "torch_amx_tile": amx_tile,
        "native_bf16": bool(native),
        "native_bf16_flags": native,
    }


# ---------------------------------------------------------------------------------------------- the probe


def probe_cache_path() -> Path:
    return cache_dir() / PROBE_CACHE_FILE


def _probe_key(size: int) -> str:
    cap = cpu_bf16_capability()
    flags = ",".join(cap["flags"]) or "none"
    return f"{cap['cpu_model']}|{flags}|torch {torch.__version__}|threads {torch.get_num_threads()}|n {size}"


def _read_probe_cache(path: Path) -> dict:
    """The cache's entries, or {} when the file is missing, unreadable or not what we wrote."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    return entries if isinstance(entries, dict) else {}


def _write_probe_cache(path: Path, key: str, result: dict) -> None:
    """Merge one entry in, atomically (temp file + rename), so a concurrent reader never sees half a file."""
    entries = _read_probe_cache(path)  # a corrupt file reads as {} and is replaced whole
    entries[key] = result
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".precision-probe-", suffix=".json", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump({"version": 1, "entries": entries}, f, indent=1)
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass  # a read-only home only costs re-probing next time
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _matmul_seconds(size: int, dtype: torch.dtype, repeats: int) -> float:
    """Best time of one ``size`` x ``size`` matmul after a warm-up, stopping early past the budget."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(dtype)
    b = torch.randn(size, size, generator=gen).to(dtype)
    with torch.inference_mode():
        t0 = time.perf_counter()
        torch.mm(a, b)  # warm-up: oneDNN/BLAS kernel selection and page faults
        first = time.perf_counter() - t0
        if first > PROBE_BUDGET_S:  # an emulated kernel is slow enough to tell from one call
            return first
        best, start = first, time.perf_counter()
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
            if time.perf_counter() - start > PROBE_BUDGET_S:
                break
    return best


def _time_probe(size: int, repeats: int) -> dict:
    flop = 2.0 * size**3
    fp32 = flop / _matmul_seconds(size, torch.float32, repeats) / 1e9
    bf16 = flop / _matmul_seconds(size, torch.bfloat16, repeats) / 1e9
    return {
        "size": size,
        "fp32_gflops": round(fp32, 2),
        "bf16_gflops": round(bf16, 2),
        "ratio": round(bf16 / fp32, 3),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def bf16_matmul_probe(size: int = 512, repeats: int = 5) -> dict:
    """Time a square fp32 vs bf16 matmul on this CPU: ``{fp32_gflops, bf16_gflops, ratio, ...}``.

    Cached per process and on disk (:func:`probe_cache_path`), keyed by CPU model, bf16 flags, torch
    version and thread count, so a run pays the < 1 s once per machine. ``cached`` says where it came
    from. ``PROBSSL_PRECISION_PROBE=0`` skips the disk cache (the probe then runs once per process).
    """
    key = _probe_key(size)
    if key in _probe_memo:
        return {**_probe_memo[key], "cached": "process"}
    use_disk = os.environ.get(PROBE_ENV_VAR, "1").strip() != "0"
    path = probe_cache_path()
    cached = _read_probe_cache(path).get(key) if use_disk else None
    if isinstance(cached, dict) and isinstance(cached.get("ratio"), (int, float)):
        _probe_memo[key] = cached
        return {**cached, "cached": "disk"}
    result = _time_probe(size, repeats)
    _probe_memo[key] = result
    if use_disk:
        _write_probe_cache(path, key, result)
    return {**result, "cached": None}


# ---------------------------------------------------------------------------------------------- precision


def _bf16_name(cap: dict) -> str:
    if "amx_bf16" in cap["native_bf16_flags"]:
        return "AMX-BF16"
    return cap["native_bf16_flags"][0]


def _choose_cpu_precision() -> PrecisionChoice:
    cap = cpu_bf16_capability()
    if not cap["native_bf16"]:
        flags = ", ".join(cap["flags"]) or "none"
        return PrecisionChoice("fp32", f"auto: CPU has no native bf16 (flags: {flags}) -> fp32")
    name = _bf16_name(cap)
    try:
        ratio = bf16_matmul_probe()["ratio"]
    except Exception as err:  # a failed probe must not stop training; fp32 is safe
        return PrecisionChoice("fp32", f"auto: CPU advertises {name} but the bf16 probe failed ({err}) -> fp32")
    if ratio >= BF16_MIN_SPEEDUP:
        return PrecisionChoice(
            "bf16", f"auto: CPU advertises {name} and the probe measured bf16 matmul {ratio:.1f}x fp32 -> bf16"
        )
    return PrecisionChoice(
        "fp32",
        f"auto: CPU advertises {name} but the probe measured bf16 at {ratio:.1f}x fp32 (< {BF16_MIN_SPEEDUP}x) -> fp32",
    )


def choose_precision(setting: str, device: torch.device) -> PrecisionChoice:
    """``train.precision``: an explicit fp32 / bf16 / fp16 wins; auto picks by the hardware.

    auto: CUDA -> bf16 autocast (fp16 on GPUs without bf16); CPU -> bf16 only when the CPU advertises
    native bf16 *and* :func:`bf16_matmul_probe` measures >= ``BF16_MIN_SPEEDUP`` x fp32, else fp32.
    fp16 on CPU is allowed: ``torch.autocast("cpu", dtype=torch.float16)`` runs on torch 2.13 (checked:
    Linear and Conv2d return float16, no warning), though it is emulated on most CPUs.
    """
    if setting not in PRECISIONS:
        raise ValueError(f"Unknown precision '{setting}'; choose from {', '.join(PRECISIONS)}")
    if setting != "auto":
        return PrecisionChoice(setting, "set by train.precision")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", "auto: CUDA -> bf16 autocast")
        return PrecisionChoice("fp16", "auto: CUDA GPU without bf16 -> fp16 autocast")
    if device.type == "cpu":
        return _choose_cpu_precision()
    return PrecisionChoice("fp32", f"auto: no mixed-precision rule for {device.type} -> fp32")


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision string alone (what the trainer stores); see :func:`choose_precision`."""
    return choose_precision(precision, device).precision


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def choose_channels_last(
    setting: bool | None, model: torch.nn.Module, device: torch.device, precision: str
) -> tuple[bool, str]:
    """``model.channels_last`` and why, in words (recorded in status.json and environment.json): an explicit
    true/false wins; ``None`` (auto) picks NHWC for models with 2-D convolutions on CPU, where the convnet's training
    step measured 25-67 % faster (docs/benchmarks.md, "Channels-last"), and on CUDA under mixed precision, where
    tensor-core convolutions want NHWC. CUDA fp32 stays NCHW (no measurement here)."""
    if setting is not None:
        return setting, f"model.channels_last={str(setting).lower()} (set)"
    if not any(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in model.modules()):
        return False, "auto: no 2-D convolutions -> NCHW (the memory format changes nothing)"
    if device.type == "cpu":
        return True, "auto: convolutions on CPU -> NHWC (the convnet step measured 25-67 % faster; docs/benchmarks.md)"
    if precision != "fp32":
        return True, f"auto: convolutions on {device.type} under {precision} -> NHWC (tensor-core convolutions want it)"
    return False, f"auto: {device.type} fp32 -> NCHW (not measured here)"


def use_channels_last(setting: bool | None, model: torch.nn.Module, device: torch.device, precision: str) -> bool:
    """Whether to train in NHWC: :func:`choose_channels_last` without its reason."""
    return choose_channels_last(setting, model, device, precision)[0]


# ---------------------------------------------------------------------------------------------- compile


@dataclasses.dataclass(frozen=True)
class CompileMeasurement:
    """One run of ``benchmarks/compile_breakeven.py`` (machine, date and command in choose_compile's docstring).

    ``compile_s`` is the first compiled step minus an eager step (cold inductor cache); the step times are
    medians of eager and compiled steps interleaved in one process."""

    machine: str
    compile_s: float
    eager_step_s: float
    compiled_step_s: float


# The measurements behind choose_compile's CPU rule, keyed by (_cpu_class(), precision).
COMPILE_MEASUREMENTS = {
    ("AVX2", "fp32"): CompileMeasurement("AMD EPYC fam 23 model 49, 2026-12-01", 19.1, 0.224, 0.229),
    ("AVX512-AMX", "fp32"): CompileMeasurement("Intel Xeon with AMX-BF16, 2026-12-02", 19.15, 0.146, 0.134),
    ("AVX512-AMX", "bf16"): CompileMeasurement("Intel Xeon with AMX-BF16, 2026-12-02", 24.15, 0.0830, 0.0695),
    ("AVX512", "fp32"): CompileMeasurement("AMD EPYC with AVX512-BF16, no AMX, 2026-12-02", 17.48, 0.1748, 0.1801),
    ("AVX512", "bf16"): CompileMeasurement("AMD EPYC with AVX512-BF16, no AMX, 2026-12-02", 43.05, 0.1509, 0.1418),
}
COMPILE_MIN_GAIN = 0.05  # a compiled step must be >= 5 % faster to count: same-process step noise is ~2-5 %


def _break_even_steps(compile_s: float, eager_s: float, compiled_s: float) -> int | None:
    """Steps after which the compile time is repaid, or None when compiled is not clearly faster."""
    saved = eager_s - compiled_s
    if saved < COMPILE_MIN_GAIN * eager_s:
        return None
    return math.ceil(compile_s / saved)


def compile_break_even_steps(cpu_class: str, precision: str) -> int | None:
    """Break-even of the measurement for (cpu_class, precision); KeyError where nothing was measured."""
    m = COMPILE_MEASUREMENTS[(cpu_class, precision)]
    return _break_even_steps(m.compile_s, m.eager_step_s, m.compiled_step_s)


def _has_cxx_compiler() -> bool:
    """Inductor on CPU writes C++ and builds it with the host compiler ($CXX, else c++/g++/clang++)."""
    candidates = [os.environ.get("CXX", ""), "c++", "g++", "clang++"]
    return any(c and shutil.which(c) for c in candidates)


def has_cxx_compiler() -> bool:
    """Whether inductor can build CPU kernels here (for the Trainer's clear error under train.compile=true)."""
    return _has_cxx_compiler()  # through the private name, which the tests fake


def _cpu_class() -> str:
    """torch's vector ISA for this CPU ("AVX2", "AVX512", ...), "-AMX" appended where AMX tiles are usable:
    AMX changes bf16 (and fp32 conv) kernels enough that its compile measurement is its own."""
    cap = cpu_bf16_capability()
    return cap["torch_cpu_capability"] + ("-AMX" if cap["torch_amx_tile"] else "")


def _compile_setting(setting: str | bool) -> str:
    if isinstance(setting, bool):
        return "true" if setting else "false"
    value = str(setting).strip().lower()
    if value not in ("auto", "true", "false"):
        raise ValueError(f"Unknown train.compile '{setting}'; choose from auto, true, false")
    return value


def choose_compile(setting: str | bool, device: torch.device, expected_steps: int, precision: str) -> CompileChoice:
    """``train.compile``: true/false win; auto compiles only where a measurement says the run repays it.

    The measurements (``COMPILE_MEASUREMENTS``, keyed by :func:`_cpu_class` and precision) time the convnet
    SimCLR training step (``Trainer.train_step`` of ``simclr-mnist`` with ``model.backbone=convnet``, batch
    256, 1x28x28, channels-last, ``trainer.model = torch.compile(trainer.method)``; augmentation and AdamW
    stay eager), eager and compiled steps interleaved in one process, 30 pairs after 5 warm-up pairs, a
    fresh ``TORCHINDUCTOR_CACHE_DIR``, torch 2.13.0+cpu, gcc present, 2 threads::

        OMP_NUM_THREADS=2 python benchmarks/compile_breakeven.py 30 PRECISION

    * ``AVX2`` fp32 (2026-12-01, 2-vCPU AMD EPYC family 23 model 49, no AVX-512; two runs, load 0.6-2.4):
      compile 19-34 s cold (~2 s from a warm cache); steps 0.224 s eager vs 0.229 s compiled (median
      per-pair ratio 1.02): compiling never repays itself, auto is off.
    * ``AVX512-AMX`` (2026-12-02, 2-vCPU Intel Xeon with AMX-BF16 and AVX512-BF16, load ~1): fp32 compile
      19.2 s, steps 0.146 s eager vs 0.134 s compiled (8 % faster: break-even ~1,600 steps); bf16 compile
      24.2 s, steps 0.083 s vs 0.0695 s (16 % faster: break-even ~1,800 steps). A second run 40 min later
      (load ~1.5) agreed: fp32 19.0 s, 0.136 vs 0.128 s (median per-pair ratio 0.93); bf16 22.2 s, 0.082 vs
      0.068 s (0.84). The table keeps the first run, whose longer compiles make the rule the more cautious.
      Both runs: ``benchmarks/results/compile-breakeven-amx.jsonl``.
    * ``AVX512`` without AMX (2026-12-02, 2-vCPU AMD EPYC with AVX512-BF16, lscpu family 25 model 17, load
      ~1.2): fp32 compile 17.5 s, steps 0.175 s eager vs 0.180 s compiled (median per-pair ratio 1.05):
      never repaid, auto is off; bf16 compile 43.1 s, steps 0.151 s vs 0.142 s (6 % faster, ratio 0.93:
      break-even ~4,700 steps). A second run (fresh cache, load ~1.4) agreed: fp32 26.3 s, 0.194 vs 0.203 s
      (1.03); bf16 35.0 s, 0.161 vs 0.150 s (0.93). The table keeps the first runs (the longer bf16 compile).
      Both runs: ``benchmarks/results/compile-breakeven-avx512.jsonl``.

    A compiled step must be ``COMPILE_MIN_GAIN`` faster to count. ResNet-18 gains more from compiling than
    the convnet (docs/benchmarks.md, "Speed"), so this rule is conservative there. Where nothing was
    measured (other CPU classes, fp16, CUDA) auto stays off: the compile cost is certain, the gain
    unknown; set ``train.compile=true`` to try.
    """
    value = _compile_setting(setting)
    if value != "auto":
        return CompileChoice(value == "true", "set by train.compile")
    if device.type != "cpu":
        where = "CUDA" if device.type == "cuda" else device.type
        return CompileChoice(False, f"auto: no compile measurement on {where} in this project -> off")
    if not _has_cxx_compiler():
        return CompileChoice(False, "auto: inductor on CPU needs a C++ compiler and none was found -> off")
    cpu_class = _cpu_class()
    if (cpu_class, precision) not in COMPILE_MEASUREMENTS:
        return CompileChoice(False, f"auto: no compile measurement for {cpu_class} CPUs at {precision} -> off")
    steps = compile_break_even_steps(cpu_class, precision)
    if steps is None:
        return CompileChoice(False, f"auto: compile measured slower/equal on {cpu_class} at {precision} -> off")
    if expected_steps < steps:
        return CompileChoice(False, f"auto: {expected_steps} steps < {steps} needed to repay the compile -> off")
    return CompileChoice(True, f"auto: {expected_steps} steps >= {steps} needed to repay the compile -> on")
