import json

import pytest
import torch
from torch import nn

from probssl.train import (
    CheckpointError,
    TrainingState,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)


def _state(step=3):
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    gen = torch.Generator().manual_seed(5)
    return (
        model,
        opt,
        TrainingState(
            model=model.state_dict(),
            optimizer=opt.state_dict(),
            step=step,
            epoch=1,
            rng={"g": gen.get_state(), "torch": torch.get_rng_state()},
            config={"a": 1},
            extra={"image_shape": [1, 8, 8]},
        ),
    )


def test_round_trip_restores_everything(tmp_path):
    model, opt, state = _state()
    path = save_checkpoint(tmp_path, state)
    loaded = load_checkpoint(path)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model[k], v)
    opt2 = torch.optim.AdamW(model.parameters(), lr=0.1)
    opt2.load_state_dict(loaded.optimizer)
    for p in model.parameters():
        assert torch.equal(opt2.state[p]["exp_avg"], opt.state[p]["exp_avg"])
    assert loaded.step == 3 and loaded.epoch == 1 and loaded.config == {"a": 1}
    g = torch.Generator()
    g.set_state(loaded.rng["g"])
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=torch.Generator().manual_seed(5)))


def test_keeps_newest_and_ignores_incomplete(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, _state(step)[2], keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002", "step-00000003"]
    (tmp_path / ".tmp-step-00000004-1").mkdir()  # a crash mid-write leaves only a temp folder
    assert latest_checkpoint(tmp_path).name == "step-00000003"


def test_truncated_tensor_file_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path, _state()[2])
    f = path / "tensors.safetensors"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="truncated or was modified"):
        load_checkpoint(path)


def test_tampered_tensor_file_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path, _state()[2])
    f = path / "tensors.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(path)


def test_pickle_file_is_never_unpickled(tmp_path):
    """A torch.save pickle dropped in place of the tensors cannot run code: it is rejected unread."""
    path = save_checkpoint(tmp_path, _state()[2])
    torch.save({"x": torch.zeros(1)}, path / "tensors.safetensors")
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_bad_json_and_foreign_format(tmp_path):
    path = save_checkpoint(tmp_path, _state()[2])
    (path / "state.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)
    (path / "state.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="modified after it was written"):
        load_checkpoint(path)
    (path / "state.json.sha256").unlink()  # another program's folder has no hash of ours
    with pytest.raises(CheckpointError, match="not a probssl checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not a probssl checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


def test_an_edited_state_json_is_refused(tmp_path):
    import json as _json

    from probssl.train.checkpoint import TrainingState as _State
    from probssl.train.checkpoint import load_checkpoint as _load
    from probssl.train.checkpoint import save_checkpoint as _save

    path = _save(
        tmp_path,
        _State(
            model={"w": torch.ones(2)}, optimizer=None, step=5, epoch=0, batch_in_epoch=5, rng={}, config={}, extra={}
        ),
    )
    assert _load(path).step == 5
    meta = _json.loads((path / "state.json").read_text())
    meta["step"] = 99999
    (path / "state.json").write_text(_json.dumps(meta))
    with pytest.raises(CheckpointError, match="modified after it was written"):
        _load(path)


def test_every_checkpoint_file_has_the_mode_of_the_runs_other_files(tmp_path):
    """safetensors writes its file 0600; a checkpoint is as readable as config.yaml (0644 under umask 022)."""
    import os

    umask = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path, _state()[2])
    finally:
        os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in path.iterdir()}
    assert modes == {"tensors.safetensors": 0o644, "state.json": 0o644, "state.json.sha256": 0o644}


def test_keep_keeps_the_n_newest(tmp_path):
    for step in range(1, 6):
        save_checkpoint(tmp_path, _state(step)[2], keep=3)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000003", "step-00000004", "step-00000005"]


def test_a_failed_write_leaves_no_temporary_folder_and_keeps_the_earlier_ones(tmp_path, monkeypatch):
    import errno

    import probssl.train.checkpoint as checkpoint

    save_checkpoint(tmp_path, _state(1)[2])

    def full(tensors, filename, *args, **kwargs):
        open(filename, "wb").write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", filename)

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(
        CheckpointError, match=r"No space left on device \(free some disk space\)\. Kept: step-00000001"
    ):
        save_checkpoint(tmp_path, _state(2)[2])
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000001"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.pop("step"), "'step' must be a count"),
        (lambda m: m.update(batch_in_epoch=-1), "'batch_in_epoch' must be a count"),
        (lambda m: m.update(optimizer={"param_groups": [{"lr": 1}], "scalars": {}}), "param_groups"),
        (lambda m: m.update(optimizer={"param_groups": [], "scalars": []}), "'optimizer.scalars'"),
        (lambda m: m.update(extra={"image_shape": [8, 8]}), "'extra.image_shape'"),
        (lambda m: m.pop("sha256"), "'sha256'"),
    ],
)
def test_a_consistently_rehashed_but_malformed_state_json_is_refused(tmp_path, edit, message):
    """Edited and re-hashed (or written by a bug): the structure is checked key by key, not trusted."""
    import hashlib

    path = save_checkpoint(tmp_path, _state()[2])
    meta = json.loads((path / "state.json").read_text())
    edit(meta)
    (path / "state.json").write_text(json.dumps(meta))
    (path / "state.json.sha256").write_text(hashlib.sha256((path / "state.json").read_bytes()).hexdigest())
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)
