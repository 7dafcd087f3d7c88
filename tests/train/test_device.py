"""Precision and compile choice by hardware: both CPU branches are covered by faking what the CPU
advertises and what the probe measures, so the tests pass alike on an AMX Xeon and on an emulating AMD."""

import json
import math

import pytest
import torch

from probssl.train import device as dev

CPU = torch.device("cpu")
CUDA = torch.device("cuda")


def capability(*native, flags=None):
    native = list(native)
    return {
        "cpu_model": "Fake CPU",
        "machine": "x86_64",
        "flags": sorted(flags if flags is not None else native),
        "torch_cpu_capability": "AVX512" if native else "AVX2",
        "torch_amx_tile": "amx_bf16" in native,
        "native_bf16": bool(native),
        "native_bf16_flags": native,
    }


def fake_probe(ratio, calls=None):
    def probe(size=512, repeats=5):
        if calls is not None:
            calls.append(size)
        return {"fp32_gflops": 100.0, "bf16_gflops": 100.0 * ratio, "ratio": ratio, "cached": None}

    return probe


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """A private probe cache directory and an empty per-process memo."""
    monkeypatch.setenv(dev.CACHE_ENV_VAR, str(tmp_path))
    monkeypatch.delenv(dev.PROBE_ENV_VAR, raising=False)
    monkeypatch.setattr(dev, "_probe_memo", {})
    return tmp_path / dev.PROBE_CACHE_FILE


# ------------------------------------------------------------------------------------------ precision


def test_amx_and_fast_probe_picks_bf16(monkeypatch):
    monkeypatch.setattr(dev, "cpu_bf16_capability", lambda: capability("amx_bf16", "avx512_bf16"))
    monkeypatch.setattr(dev, "bf16_matmul_probe", fake_probe(7.1))
    choice = dev.choose_precision("auto", CPU)
    assert choice.precision == "bf16"
    assert choice.reason == "auto: CPU advertises AMX-BF16 and the probe measured bf16 matmul 7.1x fp32 -> bf16"
    assert dev.resolve_precision("auto", CPU) == "bf16"


def test_advertised_but_slow_probe_keeps_fp32(monkeypatch):
    monkeypatch.setattr(dev, "cpu_bf16_capability", lambda: capability("avx512_bf16"))
    monkeypatch.setattr(dev, "bf16_matmul_probe", fake_probe(0.4))
    choice = dev.choose_precision("auto", CPU)
    assert choice.precision == "fp32"
    assert choice.reason.startswith("auto: CPU advertises avx512_bf16 but the probe measured bf16 at 0.4x fp32")


def test_threshold_is_inclusive(monkeypatch):
    monkeypatch.setattr(dev, "cpu_bf16_capability", lambda: capability("avx512_bf16"))
    monkeypatch.setattr(dev, "bf16_matmul_probe", fake_probe(dev.BF16_MIN_SPEEDUP))
    assert dev.resolve_precision("auto", CPU) == "bf16"


def test_no_native_bf16_keeps_fp32_without_probing(monkeypatch):
    calls = []
    monkeypatch.setattr(dev, "cpu_bf16_capability", lambda: capability(flags=["avx512f"]))
    monkeypatch.setattr(dev, "bf16_matmul_probe", fake_probe(9.0, calls))
    choice = dev.choose_precision("auto", CPU)
    assert choice == dev.PrecisionChoice("fp32", "auto: CPU has no native bf16 (flags: avx512f) -> fp32")
    assert calls == []
    monkeypatch.setattr(dev, "cpu_bf16_capability", lambda: capability())
    assert dev.choose_precision("auto", CPU).reason == "auto: CPU has no native bf16 (flags: none) -> fp32"


def test_failed_probe_falls_back_to_fp32(monkeypatch):
    def broken(size=512, repeats=5):
        raise RuntimeError("no kernel")

    monkeypatch.setattr(dev, "cpu_bf16_capability", lambda: capability("amx_bf16"))
    monkeypatch.setattr(dev, "bf16_matmul_probe", broken)
    choice = dev.choose_precision("auto", CPU)
    assert choice.precision == "fp32" and "probe failed (no kernel)" in choice.reason


@pytest.mark.parametrize("setting", ["fp32", "bf16", "fp16"])
def test_explicit_setting_wins(setting, monkeypatch):
    monkeypatch.setattr(dev, "bf16_matmul_probe", fake_probe(9.0, calls := []))
    assert dev.choose_precision(setting, CPU) == dev.PrecisionChoice(setting, "set by train.precision")
    assert calls == []


def test_fp16_autocast_runs_on_cpu():
    """Why fp16 on CPU is allowed rather than refused: torch's CPU autocast supports it."""
    with dev.autocast(CPU, "fp16"):
        y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == torch.float16


def test_unknown_precision_is_an_error():
    with pytest.raises(ValueError, match="Unknown precision 'fp8'"):
        dev.choose_precision("fp8", CPU)


def test_cuda_branch(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dev.select_device("auto") == CUDA
    assert dev.choose_precision("auto", CUDA) == dev.PrecisionChoice("bf16", "auto: CUDA -> bf16 autocast")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert dev.choose_precision("auto", CUDA).precision == "fp16"


# ------------------------------------------------------------------------------------------ capability


def test_parse_cpuinfo_x86_and_aarch64():
    x86 = "processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n\nprocessor\t: 1\n"
    assert dev.parse_cpuinfo(x86) == ("Intel Xeon", {"fpu", "avx512f", "amx_bf16", "amx_tile"})
    arm = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\nCPU part\t: 0xd4f\n"
    assert dev.parse_cpuinfo(arm) == ("", {"fp", "asimd", "bf16", "i8mm"})


def test_capability_of_this_machine_is_cached_and_well_formed():
    cap = dev.cpu_bf16_capability()
    assert dev.cpu_bf16_capability() is cap
    assert set(cap) >= {"cpu_model", "flags", "torch_cpu_capability", "torch_amx_tile", "native_bf16"}
    assert set(cap["flags"]) <= set(dev.BF16_FLAGS)


# ------------------------------------------------------------------------------------------ probe cache


def test_probe_cache_round_trip(fresh_cache, monkeypatch):
    calls = []

    def timed(size, repeats):
        calls.append(size)
        return {"size": size, "fp32_gflops": 10.0, "bf16_gflops": 70.0, "ratio": 7.0}

    monkeypatch.setattr(dev, "_time_probe", timed)
    first = dev.bf16_matmul_probe(size=64)
    assert first["ratio"] == 7.0 and first["cached"] is None and calls == [64]
    assert dev.bf16_matmul_probe(size=64)["cached"] == "process"
    monkeypatch.setattr(dev, "_probe_memo", {})  # a new process
    again = dev.bf16_matmul_probe(size=64)
    assert again["cached"] == "disk" and again["ratio"] == 7.0 and calls == [64]
    entries = json.loads(fresh_cache.read_text())["entries"]
    assert list(entries) == [dev._probe_key(64)]
    assert "torch " + torch.__version__ in dev._probe_key(64)


def test_corrupt_cache_is_ignored_and_rewritten(fresh_cache, monkeypatch):
    fresh_cache.write_text('{"entries": {"half a fi')
    monkeypatch.setattr(dev, "_time_probe", lambda size, repeats: {"ratio": 0.5, "size": size})
    assert dev.bf16_matmul_probe(size=64)["cached"] is None
    assert json.loads(fresh_cache.read_text())["entries"][dev._probe_key(64)]["ratio"] == 0.5
    assert [p.name for p in fresh_cache.parent.iterdir()] == [dev.PROBE_CACHE_FILE]  # no temp file left
    fresh_cache.write_text(json.dumps({"entries": {dev._probe_key(64): {"ratio": "fast"}}}))  # wrong type
    monkeypatch.setattr(dev, "_probe_memo", {})
    assert dev.bf16_matmul_probe(size=64)["cached"] is None


def test_env_var_disables_disk_cache(fresh_cache, monkeypatch):
    monkeypatch.setenv(dev.PROBE_ENV_VAR, "0")
    monkeypatch.setattr(dev, "_time_probe", lambda size, repeats: {"ratio": 2.0, "size": size})
    dev.bf16_matmul_probe(size=64)
    assert not fresh_cache.exists()


def test_real_probe_is_short(fresh_cache, monkeypatch):
    monkeypatch.setenv(dev.PROBE_ENV_VAR, "0")
    result = dev.bf16_matmul_probe(size=64, repeats=2)
    assert result["fp32_gflops"] > 0 and result["bf16_gflops"] > 0
    assert result["ratio"] == pytest.approx(result["bf16_gflops"] / result["fp32_gflops"], rel=0.01)


# ------------------------------------------------------------------------------------------ compile


def test_compile_explicit_settings():
    assert dev.choose_compile(True, CPU, 10, "fp32") == dev.CompileChoice(True, "set by train.compile")
    assert dev.choose_compile("false", CPU, 10**6, "fp32") == dev.CompileChoice(False, "set by train.compile")
    with pytest.raises(ValueError, match="train.compile"):
        dev.choose_compile("sometimes", CPU, 10, "fp32")


def test_compile_auto_off_without_cxx_compiler(monkeypatch):
    monkeypatch.setattr(dev, "_has_cxx_compiler", lambda: False)
    choice = dev.choose_compile("auto", CPU, 10**6, "fp32")
    assert not choice.enabled and "C++ compiler" in choice.reason


def test_compile_break_even_follows_the_measurements():
    """The break-even is compile time / time saved per step, and None where the step was not >= 5 % faster."""
    assert dev._break_even_steps(20.0, 0.2, 0.1) == 200
    assert dev._break_even_steps(20.0, 0.2, 0.195) is None  # 2.5 % faster: inside step noise
    assert dev.compile_break_even_steps("AVX2", "fp32") is None  # measured 2 % slower on the AVX2 EPYC
    amx = dev.COMPILE_MEASUREMENTS[("AVX512-AMX", "bf16")]
    expected = math.ceil(amx.compile_s / (amx.eager_step_s - amx.compiled_step_s))
    assert dev.compile_break_even_steps("AVX512-AMX", "bf16") == expected


@pytest.mark.parametrize("cpu_class,precision", list(dev.COMPILE_MEASUREMENTS))
def test_compile_auto_on_each_measured_cpu_class(monkeypatch, cpu_class, precision):
    """Each measured (CPU class, precision), faked: on past the break-even, off before it or where it never pays."""
    monkeypatch.setattr(dev, "_has_cxx_compiler", lambda: True)
    monkeypatch.setattr(dev, "_cpu_class", lambda: cpu_class)
    steps = dev.compile_break_even_steps(cpu_class, precision)
    choice = dev.choose_compile("auto", CPU, 10**6, precision)
    if steps is None:
        assert choice == dev.CompileChoice(
            False, f"auto: compile measured slower/equal on {cpu_class} at {precision} -> off"
        )
    else:
        assert choice.enabled and f">= {steps} needed" in choice.reason
        assert not dev.choose_compile("auto", CPU, steps - 1, precision).enabled


def test_cpu_class_names_amx(monkeypatch):
    """AMX gets its own class (its bf16 and fp32 kernels differ); the flags are faked both ways."""
    for amx, expected in ((True, "AVX512-AMX"), (False, "AVX512")):
        cap = {**dev.cpu_bf16_capability(), "torch_cpu_capability": "AVX512", "torch_amx_tile": amx}
        monkeypatch.setattr(dev, "cpu_bf16_capability", lambda cap=cap: cap)
        assert dev._cpu_class() == expected


def test_compile_auto_off_where_unmeasured(monkeypatch):
    monkeypatch.setattr(dev, "_has_cxx_compiler", lambda: True)
    monkeypatch.setattr(dev, "_cpu_class", lambda: "SVE256")  # an Arm class: not measured
    assert "no compile measurement for SVE256" in dev.choose_compile("auto", CPU, 10**6, "fp32").reason
    monkeypatch.setattr(dev, "_cpu_class", lambda: "AVX2")
    assert "no compile measurement" in dev.choose_compile("auto", CPU, 10**6, "bf16").reason
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cuda = dev.choose_compile("auto", CUDA, 10**6, "bf16")
    assert not cuda.enabled and "CUDA" in cuda.reason


def test_slow_kernel_is_timed_from_one_call(monkeypatch):
    """Past the budget, the warm-up call is the measurement: an emulated bf16 probe stays short."""
    monkeypatch.setattr(dev, "PROBE_BUDGET_S", 0.0)
    calls = []
    real_mm = torch.mm
    monkeypatch.setattr(torch, "mm", lambda a, b: calls.append(1) or real_mm(a, b))
    assert dev._matmul_seconds(32, torch.bfloat16, repeats=5) > 0
    assert len(calls) == 1
