import json

import pytest
import torch

from probssl.config import ConfigError, load_config
from probssl.evaluation import evaluate_run
from probssl.train import Trainer, TrainingError, check_config, latest_checkpoint, load_run

QUICK = [
    "train.epochs=3",
    "train.batch_size=64",
    "data.train_subset=256",
    "train.progress=false",
    "train.log_every=1",
    "model.head_hidden_dim=64",
    "model.embed_dim=16",
]


def _config(preset="simclr-digits", extra=()):
    return load_config(preset, overrides=QUICK + list(extra))


@pytest.mark.parametrize("preset", ["simclr-digits", "vsimclr-digits"])
def test_trains_with_finite_decreasing_loss_and_checkpoints(tmp_path, preset):
    config = _config(preset, ["train.epochs=8", "train.lr=0.003"])
    trainer = Trainer(config, tmp_path / "run")
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "loss" in r]  # training records (the online monitors log their own)
    losses = [r["loss"] for r in records]
    assert len(losses) == 8 * 4 and all(map(lambda v: v == v, losses))
    assert sum(losses[-4:]) < sum(losses[:4])
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "step-00000032"
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "finished"


def test_resume_from_mid_epoch_checkpoint_matches_uninterrupted_run(tmp_path):
    config = _config(extra=["train.checkpoint_every_steps=3"])
    Trainer(config, tmp_path / "a").fit()
    _, full, _ = load_run(tmp_path / "a")

    class Boom(Exception):
        pass

    trainer = Trainer(config, tmp_path / "b")
    original = trainer.train_step

    def crash_at_step_7(index, images=None):
        if trainer.step == 7:  # 4 steps per epoch: the last checkpoint (step 6) is mid-epoch 2
            raise Boom()
        return original(index, images)

    trainer.train_step = crash_at_step_7
    with pytest.raises(Boom):
        trainer.fit()
    assert json.loads((tmp_path / "b" / "status.json").read_text())["status"] == "failed"
    resumed = Trainer(config, tmp_path / "b", resume="auto")
    assert resumed.step == 6 and resumed.batch_in_epoch == 2
    resumed.fit()
    _, again, _ = load_run(tmp_path / "b")
    for (k, v), w in zip(full.state_dict().items(), again.state_dict().values()):
        assert torch.equal(v, w), k
    log_a = [
        r["loss"] for r in map(json.loads, (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()) if "loss" in r
    ]
    log_b = [
        r["loss"] for r in map(json.loads, (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) if "loss" in r
    ]
    assert log_a == log_b


def test_run_dir_holding_another_run_is_an_error(tmp_path):
    Trainer(_config(extra=["train.epochs=1"]), tmp_path / "r").fit()
    with pytest.raises(TrainingError, match="already holds a run"):
        Trainer(_config(extra=["train.epochs=1"]), tmp_path / "r")
    with pytest.raises(TrainingError, match="different config"):
        Trainer(_config(extra=["train.epochs=1", "train.lr=0.5"]), tmp_path / "r", resume="auto")


def test_non_finite_loss_names_step_and_term(tmp_path):
    trainer = Trainer(_config("vsimclr-digits"), tmp_path / "nan")
    original = trainer.method.loss_terms

    def poisoned(views, labels=None):
        terms = original(views, labels)
        if trainer.step == 5:
            terms["kl"] = terms["kl"] * float("nan")
        return terms

    trainer.method.loss_terms = poisoned
    with pytest.raises(TrainingError, match=r"step 5 .*term\(s\) kl"):
        trainer.fit()
    assert latest_checkpoint(tmp_path / "nan" / "checkpoints").name == "step-00000004"


@pytest.mark.parametrize(
    "override,match",
    [
        ("train.batch_size=-4", "batch_size must be >= 2"),
        ("augment.views=1", "augment.views must be >= 2"),
        ("model.embed_dim=1", "embed_dim must be >= 2"),
        ("method.temperature=0", "temperature must be > 0"),
    ],
)
def test_impossible_values_are_clear_errors(override, match):
    with pytest.raises(ConfigError, match=match):  # when the config is built, before any run folder exists
        check_config(load_config("simclr-digits", overrides=[override]))


def test_eval_of_a_trained_run_writes_metrics(tmp_path):
    Trainer(_config("vsimclr-digits"), tmp_path / "e").fit()
    metrics = evaluate_run(tmp_path / "e")
    for key in ("linear_acc", "knn_acc", "effective_rank", "mean_uncertainty"):
        assert key in metrics
    assert 0 <= metrics["linear_acc"] <= 1 and metrics["linear_acc"] > 0.3
    assert json.loads((tmp_path / "e" / "eval.json").read_text())["linear_acc"] == metrics["linear_acc"]


@pytest.mark.slow
def test_vsimclr_on_real_mnist_trains_and_evaluates(tmp_path, shared_data_dir):
    config = load_config(
        "vsimclr-mnist",
        overrides=[
            f"data.data_dir={shared_data_dir}",
            "data.download=false",
            "data.train_subset=2048",
            "train.epochs=1",
            "train.progress=false",
            "train.batch_size=256",
        ],
    )
    Trainer(config, tmp_path / "m").fit()
    metrics = evaluate_run(tmp_path / "m")
    assert metrics["splits"]["test"] == 10000 and metrics["linear_acc"] > 0.5


def test_skip_nonfinite_skips_up_to_the_limit(tmp_path):
    trainer = Trainer(_config("vsimclr-digits", ["train.skip_nonfinite=2"]), tmp_path / "skip")
    original = trainer.method.loss_terms

    def poisoned(views, labels=None):
        terms = original(views, labels)
        if trainer.step in (2, 5, 7):
            terms["kl"] = terms["kl"] * float("nan")
        return terms

    trainer.method.loss_terms = poisoned
    with pytest.raises(TrainingError, match="step 7"):
        trainer.fit()
    assert trainer.skipped_steps == 2


def test_tensorboard_without_the_package_is_a_clear_error(tmp_path):
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("tensorboard is installed")
    with pytest.raises(TrainingError, match="pip install tensorboard"):
        Trainer(_config(extra=["train.tensorboard=true"]), tmp_path / "tb")


def test_resume_may_change_operational_settings_only(tmp_path):
    Trainer(_config(extra=["train.epochs=1"]), tmp_path / "r").fit()
    resumed = Trainer(
        _config(extra=["train.epochs=1", "train.progress=true", "train.log_every=7"]), tmp_path / "r", resume="auto"
    )
    assert resumed.step == 4
    with pytest.raises(TrainingError, match="different config"):
        Trainer(_config(extra=["train.epochs=1", "train.seed=3"]), tmp_path / "r", resume="auto")


@pytest.mark.parametrize(("started", "resumed"), [("false", "true"), ("true", "false")])
def test_a_run_resumes_with_the_head_it_started_with(tmp_path, started, resumed):
    """method.epistemic may differ on resume (a method's default changed, or a user's --set): the checkpoint
    decides whether the run carries the head, config.yaml says so, and the run finishes with a fitted head or none."""
    import yaml

    run = tmp_path / "r"
    Trainer(_config("scl-gaussian-digits", ["train.epochs=1", f"method.epistemic={started}"]), run).fit()
    extra = ["train.epochs=2", f"method.epistemic={resumed}"]
    trainer = Trainer(_config("scl-gaussian-digits", extra), run, resume="auto")
    assert trainer.step == 4 and trainer.config.method.epistemic is (started == "true")
    trainer.fit()
    assert yaml.safe_load((run / "config.yaml").read_text())["method"]["epistemic"] is (started == "true")
    _, method, state = load_run(run)
    assert state.step == 8
    if started == "true":
        assert bool(method.feature_density.fitted) and method.uncertainty_kinds()[0] == "epistemic"
    else:
        assert method.feature_density is None and method.uncertainty_kinds()[0] == "trace"


def test_clean_first_view_feeds_the_raw_image(tmp_path):
    trainer = Trainer(_config("cr-vae-digits", ["augment.clean_first_view=true"]), tmp_path / "c")
    seen = {}
    original = trainer.method.loss_terms

    def spy(views, labels=None):
        seen["views"] = views.clone()
        return original(views, labels)

    trainer.method.loss_terms = spy
    index = torch.arange(8)
    trainer.train_step(index)
    raw = trainer.images[index].float() / 255
    assert torch.equal(seen["views"][0], raw) and not torch.equal(seen["views"][1], raw)


@pytest.mark.parametrize("preset", ["simclr-digits", "simvae-digits"])
def test_channels_last_and_nchw_steps_agree(tmp_path, preset):
    """NHWC is an execution detail: one step gives the same loss and gradients in both memory formats.
    (Gradients, not updated weights: Adam's first step moves every weight by ~lr whatever its gradient's
    size.) Compared by relative norm: NHWC kernels sum in another order, and these gradients are that
    sensitive to rounding: perturbing every SimVAE weight by 1e-6 (relative) moves its gradients by a median
    0.6 %, max 1.3 % (SimCLR: early layers 0.3 %). A layout bug would move them by O(1). Float32 pinned: on a CPU
    where ``auto`` picks bf16, the two layouts round bf16 partial sums differently (loss 99.154 vs 99.162 seen on
    an AVX512-BF16 EPYC), which is precision noise, not a layout difference."""
    results = {}
    for fmt in ("true", "false"):
        trainer = Trainer(_config(preset, [f"model.channels_last={fmt}", "train.precision=fp32"]), tmp_path / fmt)
        assert trainer.channels_last is (fmt == "true")
        trainer.model.train()
        stats = trainer.train_step(torch.arange(64))
        results[fmt] = stats["loss"], [p.grad.clone() for p in trainer.method.parameters() if p.grad is not None]
    (loss_cl, grads_cl), (loss_cf, grads_cf) = results["true"], results["false"]
    assert loss_cl == pytest.approx(loss_cf, rel=1e-5, abs=1e-6)
    assert len(grads_cl) == len(grads_cf) > 0
    for a, b in zip(grads_cl, grads_cf):
        assert float((a - b).norm() / b.norm()) < 3e-2


@pytest.mark.parametrize("backbone,expected", [("convnet", True), ("mlp-simvae", False)])
def test_channels_last_auto_is_on_for_conv_models_on_cpu(tmp_path, backbone, expected):
    extra = [f"model.backbone={backbone}", "train.device=cpu"]
    if backbone != "convnet":
        extra += ["model.decoder=mlp", "model.width=null"]
    trainer = Trainer(_config("simvae-digits", extra), tmp_path / "run")
    assert trainer.channels_last is expected
    convs = [m for m in trainer.method.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs) is True
    assert bool(convs) is expected


def test_each_record_carries_the_number_of_its_epoch_its_last_step_included(tmp_path):
    """The last step of an epoch is logged with its own epoch's number (as the monitors' record and the checkpoint
    at the epoch's end say), not with the previous one. 4 steps per epoch, a checkpoint every 2 steps."""
    run = tmp_path / "run"
    config = _config(extra=["train.epochs=2", "train.checkpoint_every_steps=2", "train.keep_checkpoints=3"])
    Trainer(config, run).fit()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    training = {r["step"]: r["epoch"] for r in records if "loss" in r}
    assert training == {1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 2, 7: 2, 8: 2}
    monitors = {r["step"]: r["epoch"] for r in records if "monitor/knn_acc" in r}
    assert monitors == {4: 1, 8: 2} and all(training[s] == e for s, e in monitors.items())
    from probssl.train import list_checkpoints, load_checkpoint

    kept = list_checkpoints(run / "checkpoints")
    assert [p.name for p in kept] == ["step-00000004", "step-00000006", "step-00000008"]  # keep_checkpoints=3
    assert [load_checkpoint(p).epoch for p in kept] == [1, 1, 2]  # completed epochs: step 6 is mid-epoch 2
    assert all(load_checkpoint(kept[i]).epoch == training[s] for i, s in ((0, 4), (2, 8)))


def test_keep_checkpoints_is_validated():
    with pytest.raises(ConfigError, match="train.keep_checkpoints must be >= 1"):
        _config(extra=["train.keep_checkpoints=0"])
