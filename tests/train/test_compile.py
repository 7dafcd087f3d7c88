"""``train.compile``: a compiled method computes what the eager one computes, compiles once per run, and keeps
resume and DDP exact.

Backends. Inductor on this project's CPU builds every kernel with g++: a cold compile of even the tiniest method
took 50-90 s here (2-vCPU AMD EPYC, torch 2.13.0, 2026-12-01; ~6 s from a warm cache), too slow for every method.
So the per-method tests use ``aot_eager``: dynamo's graph capture plus AOT autograd's joint forward/backward
trace, which is where tracing bugs show (a graph break that changes the maths, a guard on a Python value, a
side effect replayed wrongly), run with eager kernels. One test uses real inductor on one method.
"""

import copy
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch._dynamo
from torch._dynamo.backends.debugging import aot_eager

from probssl.config import ConfigError, load_config
from probssl.methods import create_method, list_methods
from probssl.train import Trainer, TrainingError, device, load_run
from probssl.train.device import autocast

DDP_WORKER = Path(__file__).with_name("compile_ddp_worker.py")
SHAPE = (1, 8, 8)
N = 6


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Dynamo caches compiled code per code object (``Method.forward`` is shared by every method) and gives up
    after ``cache_size_limit`` entries, silently running eager: each test starts from an empty cache."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _method(name: str, extra=()):
    """The method contract test's tiny method (tests/methods/test_method_contract.py)."""
    overrides = [f"method.name={name}", "model.width=0.25", "model.embed_dim=8", "model.head_hidden_dim=32"]
    if name == "scl":
        overrides.append("method.latent_dim=16")
    torch.manual_seed(0)
    return create_method(load_config(overrides=[*overrides, *extra]), SHAPE)


def _inputs(method, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(2, N, *SHAPE, generator=gen)
    labels = torch.tensor([0, 1, 0, 1, 2, 2]) if method.supervised else None
    return x, labels


class CountingBackend:
    """A torch.compile backend that counts the graphs it is given (one per compile of a frame) and runs them
    with ``aot_eager``."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return aot_eager(gm, example_inputs)


def _step(model, method, x, labels, seed=1, precision="fp32"):
    """Loss terms {name: float64 scalar} and gradients {param: tensor} of one forward/backward under ``seed``."""
    method.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    with autocast(torch.device("cpu"), precision):
        terms = model(x, labels)
    sum(terms.values()).backward()
    grads = {k: p.grad.clone() for k, p in method.named_parameters() if p.grad is not None}
    return {k: v.detach().double() for k, v in terms.items()}, grads


def _assert_same(eager, compiled, rtol, atol):
    (terms_e, grads_e), (terms_c, grads_c) = eager, compiled
    assert terms_e.keys() == terms_c.keys() and grads_e.keys() == grads_c.keys()
    for k in terms_e:
        torch.testing.assert_close(terms_c[k], terms_e[k], rtol=rtol, atol=atol, msg=lambda m, k=k: f"term {k}: {m}")
    for k in grads_e:
        torch.testing.assert_close(grads_c[k], grads_e[k], rtol=rtol, atol=atol, msg=lambda m, k=k: f"grad {k}: {m}")


def _max_diff(eager, compiled):
    """Largest absolute difference over every term and gradient (printed: the tolerances' evidence)."""
    pairs = [*zip(eager[0].values(), compiled[0].values()), *zip(eager[1].values(), compiled[1].values())]
    return max(float((a.double() - b.double()).abs().max()) for a, b in pairs)


VARIANTS = {"scl-bernoulli": ("scl", ["method.latent=bernoulli"])}  # SCL's annealed temperature is in its forward
# mcinfonce's float64 vMF sampler sits behind a graph break, so AOT autograd splits its backward in two and sums
# gradients in another order: max abs difference 2e-6 on an AVX2 EPYC, 1.9e-6 on an AVX512 EPYC and a Xeon with
# AMX (1 element of 72 above 1e-6). Its own atol is 5e-6; every other method keeps 1e-6.
ATOL = {"mcinfonce": 5e-6}


@pytest.mark.parametrize("name", [*list_methods(), *VARIANTS])
def test_compiled_loss_and_gradients_equal_eager(name):
    """Every registered method (and SCL's Bernoulli latent), aot_eager: the same weights, seed and inputs give
    the same loss terms and gradients as eager, and the same state after ``after_optimizer_step`` (batch-norm
    statistics, MoCo's queue). Tolerance rtol 1e-5, atol 1e-6: aot_eager runs eager's kernels, but AOT
    autograd's traced graph may order a few ops differently; measured max abs difference 0 for every method but
    mcinfonce (~2e-6, see ``ATOL``). A second step with other inputs and another ``on_step`` value (SCL: another temperature) agrees
    as well and compiles nothing new: per-step state is not baked into the graph, nor guarded on."""
    method_name, extra = VARIANTS.get(name, (name, []))
    eager = _method(method_name, extra).train()
    twin = copy.deepcopy(eager)
    backend = CountingBackend()
    compiled = torch.compile(twin, backend=backend)
    x, labels = _inputs(eager)
    eager.on_step(0, 10)
    twin.on_step(0, 10)
    first_e, first_c = _step(eager, eager, x, labels), _step(compiled, twin, x, labels)
    print(f"{name}: max |compiled - eager| {_max_diff(first_e, first_c):.3g}")
    atol = ATOL.get(name, 1e-6)
    _assert_same(first_e, first_c, rtol=1e-5, atol=atol)
    eager.after_optimizer_step(0, 10)  # MoCo: enqueues the keys its forward kept (a side effect dynamo replays)
    twin.after_optimizer_step(0, 10)
    for (k, a), b in zip(eager.state_dict().items(), twin.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"state {k}: {m}")
    graphs = backend.graphs
    assert graphs >= 1
    x2, labels2 = _inputs(eager, seed=1)
    eager.on_step(5, 10)
    twin.on_step(5, 10)
    _assert_same(_step(eager, eager, x2, labels2, seed=2), _step(compiled, twin, x2, labels2, seed=2), 1e-5, atol)
    assert backend.graphs == graphs, "the second step recompiled"


def test_inductor_loss_and_gradients_equal_eager():
    """Real inductor (generated C++ kernels) on one probabilistic method, vsimclr: backbone with batch norm,
    a sampled posterior, KL and NT-Xent. ``fallback_random``: inductor otherwise draws its own random numbers,
    so the posterior samples (and the loss) would differ by design. Tolerance rtol 1e-4, atol 1e-5: inductor
    fuses ops and reorders reductions (and vectorises exp/log), so float32 results differ in the last bits;
    measured max abs difference 7e-6 (on gradients up to ~1). Cold compile 50-90 s on this project's CPU, ~6 s
    from inductor's on-disk cache."""
    eager = _method("vsimclr").train()
    twin = copy.deepcopy(eager)
    x, labels = _inputs(eager)
    with torch._inductor.config.patch(fallback_random=True):
        compiled = torch.compile(twin, backend="inductor")
        result = _step(compiled, twin, x, labels)
    expected = _step(eager, eager, x, labels)
    print(f"inductor vsimclr: max |compiled - eager| {_max_diff(expected, result):.3g}")
    _assert_same(expected, result, rtol=1e-4, atol=1e-5)


def test_compiled_equals_eager_under_bf16_autocast():
    """bf16 autocast on CPU (emulated on this EPYC, hence one tiny method): the compiled graph keeps autocast's
    casts, so it runs the same bf16 and float32 ops as eager. Tolerance rtol 1e-2, atol 1e-3 (bf16 keeps 8
    mantissa bits, ~4e-3 relative per rounding; a traced graph may round in another order); measured max abs
    difference 0 (and 0.68 between bf16 and fp32, so autocast did act)."""
    eager = _method("vsimclr").train()
    twin = copy.deepcopy(eager)
    x, labels = _inputs(eager)
    expected = _step(eager, eager, x, labels, precision="bf16")
    result = _step(torch.compile(twin, backend="aot_eager"), twin, x, labels, precision="bf16")
    fp32 = _step(eager, eager, x, labels)
    print(
        f"bf16: max |compiled - eager| {_max_diff(expected, result):.3g}, |bf16 - fp32| {_max_diff(expected, fp32):.3g}"
    )
    _assert_same(expected, result, rtol=1e-2, atol=1e-3)
    assert _max_diff(expected, fp32) > 0  # autocast did run in bf16


# ------------------------------------------------------------------------------------------ the real Trainer

QUICK = [
    "train.batch_size=32",
    "data.train_subset=100",  # 3 steps per epoch; drop_last drops the 4 left over, so no batch of another size
    "train.max_steps=6",
    "train.epochs=2",
    "train.progress=false",
    "train.log_every=1",
    "model.width=0.25",
    "model.head_hidden_dim=32",
    "model.embed_dim=8",
    "train.compile=true",
    "train.compile_backend=aot_eager",
]


class GraphsPerStep:
    """Callback: dynamo's count of compiled graphs after each training step."""

    def __init__(self):
        self.graphs = []

    def on_step_end(self, trainer, stats):
        self.graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def _compiled_run(config, run_dir, **kwargs):
    """A Trainer of ``config`` that records dynamo's count of compiled graphs after each step."""
    counter = GraphsPerStep()
    trainer = Trainer(config, run_dir, callbacks=[counter], echo=lambda m: None, **kwargs)
    assert trainer.compiled and "aot_eager" in trainer.compile_reason
    return trainer, counter


def test_a_compiled_moco_run_compiles_once(tmp_path):
    """6 steps over 2 epochs of the real Trainer with train.compile=true for MoCo, whose state changes every step
    (queue, queue pointer, momentum encoder; and the learning rate), with the online monitors between the epochs
    (they switch the method to eval and back, and call the eager method). Every graph is compiled in the first
    step and none after it: bound 0 recompiles (the compiled forward only ever runs in train mode)."""
    torch._dynamo.utils.counters.clear()
    trainer, counter = _compiled_run(load_config("moco-digits", overrides=QUICK), tmp_path / "run")
    trainer.fit()
    assert trainer.step == 6 and counter.graphs[0] >= 1
    assert counter.graphs == [counter.graphs[0]] * 6, f"compiled graphs after each step: {counter.graphs}"


def test_compiled_resume_matches_uninterrupted_compiled_run(tmp_path):
    """SCL with Bernoulli latents (its relaxation temperature is annealed every step): an uninterrupted compiled
    run compiles in its first step only (before the fix, with the temperature a Python float, the second step
    recompiled on the guard ``self.relax_temperature == 1.0``). A run that crashes at step 5 with a checkpoint
    at step 3, resumed (compiling again), ends with that run's weights and losses bit for bit (aot_eager's
    kernels are eager's)."""
    config = load_config("scl-bernoulli-digits", overrides=[*QUICK, "train.checkpoint_every_steps=3"])
    torch._dynamo.utils.counters.clear()
    trainer, counter = _compiled_run(config, tmp_path / "a")
    trainer.fit()
    assert counter.graphs[0] >= 1 and counter.graphs == [counter.graphs[0]] * 6, counter.graphs

    class Boom(Exception):
        pass

    trainer, _ = _compiled_run(config, tmp_path / "b")
    original = trainer.train_step

    def crash_at_step_5(index, images=None):
        if trainer.step == 5:
            raise Boom()
        return original(index, images)

    trainer.train_step = crash_at_step_5
    with pytest.raises(Boom):
        trainer.fit()
    resumed, _ = _compiled_run(config, tmp_path / "b", resume="auto")
    assert resumed.step == 3
    resumed.fit()
    full, again = load_run(tmp_path / "a")[1].state_dict(), load_run(tmp_path / "b")[1].state_dict()
    assert full.keys() == again.keys()
    for k in full:
        assert torch.equal(full[k], again[k]), k
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")


def _losses(run):
    return [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def test_compiled_ddp_run_equals_eager_ddp_run(tmp_path):
    """2 gloo processes, SimCLR (its loss all-gathers both ranks' embeddings, with gradients): a compiled run
    (aot_eager, through DDP's graph splitting at bucket boundaries) ends with the weights of the eager run, within
    rtol 1e-5, atol 1e-6 (aot_eager runs eager's kernels: measured max abs difference 0 here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    overrides = [o for o in QUICK if o != "train.compile=true"] + ["train.monitor_every=0"]
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "OMP_NUM_THREADS": "1"}
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        cmd = [sys.executable, str(DDP_WORKER), "simclr-digits", str(tmp_path), *overrides]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    status = json.loads((tmp_path / "compiled" / "status.json").read_text())
    assert status["compile"] is True and status["world_size"] == 2
    assert json.loads((tmp_path / "graphs.json").read_text()) >= 1  # dynamo did compile the DDP-wrapped method
    a, b = load_run(tmp_path / "compiled")[1].state_dict(), load_run(tmp_path / "eager")[1].state_dict()
    assert a.keys() == b.keys() and load_run(tmp_path / "compiled")[2].step == 6
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    print(f"DDP compiled vs eager: max abs weight difference {diff:.3g}")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


def test_compile_backend_is_checked(tmp_path, monkeypatch):
    """A backend that does not exist is a config error naming the key; inductor without a C++ compiler on CPU
    is one clear error before training starts, naming the fix."""
    with pytest.raises(ConfigError, match="train.compile_backend"):
        load_config("simclr-digits", overrides=["train.compile_backend=tensorrt"])
    monkeypatch.setattr(device, "_has_cxx_compiler", lambda: False)
    config = load_config("simclr-digits", overrides=[*QUICK, "train.compile_backend=inductor"])
    with pytest.raises(TrainingError, match="C\\+\\+ compiler.*train.compile=false"):
        Trainer(config, tmp_path / "run", echo=lambda m: None)
    assert not (tmp_path / "run").exists()
