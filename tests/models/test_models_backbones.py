"""Backbones: shapes for every registered name, channels_last, gradient flow, ResNet parameter counts."""

import copy

import pytest
import torch

from probssl.models import (
    BasicBlock,
    Bottleneck,
    ConvNet,
    MLPEncoder,
    ResNet,
    create_backbone,
    list_backbones,
)

ALL = list_backbones()
SIZES = (8, 28, 32)
EXPECTED_DIM = {"convnet": 128, "mlp-simvae": 500, "resnet18": 512, "resnet50": 2048}

# torchvision resnet18 / resnet50 parameter counts minus the 1000-way fc layer.
TV_RESNET18_NO_FC = 11_689_512 - (512 * 1000 + 1000)
TV_RESNET50_NO_FC = 25_557_032 - (2048 * 1000 + 1000)

_CACHE: dict = {}
# Backbones whose feature size depends on the image size (they flatten their last map): its side after the stem
# (3x3 conv without padding, max-pool 3/2/1) and two stride-2 stages, times SimVAE's 128 channels.
SIZE_DEPENDENT = {"mlp-simvae", "simvae-resnet18"}
SIMVAE_SIDE = {8: 1, 28: 4, 32: 4}


def get_model(name, in_channels, size=32):
    """Models are cached per (name, channels[, size for the MLP]): building resnet50 takes ~0.4 s."""
    key = (name, in_channels, size if name in SIZE_DEPENDENT else None)
    if key not in _CACHE:
        _CACHE[key] = create_backbone(name, in_channels, size)
    return _CACHE[key]


def family_dim(name, size):
    if name == "simvae-resnet18":
        return 128 * SIMVAE_SIDE[size] ** 2
    return EXPECTED_DIM[name.split("-")[0] if name.startswith("resnet") else name]


def test_expected_names_registered():
    for name in [
        "convnet",
        "mlp-simvae",
        "resnet18",
        "resnet50",
        "resnet18-cifar",
        "resnet18-imagenet",
        "resnet50-cifar",
        "resnet50-imagenet",
    ]:
        assert name in ALL


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("name", ALL)
def test_output_shape(name, in_channels):
    for size in SIZES:
        model = get_model(name, in_channels, size).eval()
        assert model.feature_dim == family_dim(name, size)
        n = 1 if name.startswith("resnet") else 2  # eval mode: batch 1 is fine and halves the cost
        x = torch.randn(n, in_channels, size, size)
        with torch.no_grad():
            y = model(x)
        assert y.shape == (n, model.feature_dim)
        assert y.dtype == torch.float32 and torch.isfinite(y).all()


@pytest.mark.parametrize("name", ALL)
def test_gradients_flow_to_all_parameters(name):
    size = 16 if name.startswith("resnet") else 8
    model = create_backbone(name, 3, size) if name == "mlp-simvae" else get_model(name, 3)
    model.train().zero_grad(set_to_none=True)
    x = torch.randn(4, 3, size, size)
    y = model(x)
    (y * torch.randn_like(y)).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", ALL)
def test_channels_last(name):
    size = 16 if name.startswith("resnet") else 28
    model = copy.deepcopy(get_model(name, 3, size)).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        y_cl = model(x.contiguous(memory_format=torch.channels_last))
        y_mixed = model(x)  # NCHW input into a channels_last model
    for y in (y_cl, y_mixed):
        assert y.shape == ref.shape and y.is_contiguous()
        torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)


def test_convnet_channels_last_training_step():
    model = create_backbone("convnet", 1, 28).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(8, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    loss = model(x).square().mean()
    loss.backward()
    opt.step()
    assert all(p.grad is not None for p in model.parameters())


# --- ResNet -------------------------------------------------------------------------------------


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth,expected", [(18, TV_RESNET18_NO_FC), (50, TV_RESNET50_NO_FC)])
def test_resnet_param_counts_match_torchvision(depth, expected):
    assert expected == {18: 11_176_512, 50: 23_508_032}[depth]
    imagenet = get_model(f"resnet{depth}-imagenet", 3)
    cifar = get_model(f"resnet{depth}-cifar", 3)
    assert imagenet.stem_type == "imagenet" and cifar.stem_type == "cifar"
    assert n_params(imagenet) == expected
    # the CIFAR stem differs only in conv1: 3x3 instead of 7x7 kernels
    assert n_params(cifar) == expected - 64 * 3 * (49 - 9)
    conv1_free = {k: v.shape for k, v in imagenet.state_dict().items() if not k.startswith("conv1")}
    assert conv1_free == {k: v.shape for k, v in cifar.state_dict().items() if not k.startswith("conv1")}
    # one input channel: conv1 has a third of the weights
    assert n_params(get_model(f"resnet{depth}-imagenet", 1)) == expected - 64 * 2 * 49


def test_resnet_stems():
    model = get_model("resnet18-cifar", 3)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    model = get_model("resnet18-imagenet", 3)
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    assert isinstance(model.maxpool, torch.nn.MaxPool2d)
    # bare names pick the stem from the image size ("auto") or take it as a kwarg
    assert get_model("resnet18", 3).stem_type == "cifar"  # built at 32x32
    assert create_backbone("resnet18", 3, 224).stem_type == "imagenet"
    assert create_backbone("resnet18", 3, 32, stem="imagenet").stem_type == "imagenet"
    with pytest.raises(ValueError, match="fixed stem"):
        create_backbone("resnet18-cifar", 3, 32, stem="imagenet")
    with pytest.raises(ValueError, match="stem"):
        create_backbone("resnet18", 3, 32, stem="tiny")


def test_resnet_feature_map_sizes():
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert get_model("resnet18-cifar", 3).eval().forward_features(x).shape == (1, 512, 4, 4)
        assert get_model("resnet18-imagenet", 3).eval().forward_features(x).shape == (1, 512, 1, 1)


@pytest.mark.parametrize("block", [BasicBlock, Bottleneck])
def test_zero_init_residual(block):
    model = ResNet(block, (1, 1, 1, 1), in_channels=3, stem="cifar", zero_init_residual=True)
    blocks = [m for m in model.modules() if isinstance(m, block)]
    assert len(blocks) == 4
    for b in blocks:
        assert torch.count_nonzero(b.last_bn.weight) == 0
    # with gamma = 0 a block without downsampling is relu(identity) = identity on relu'd inputs
    b = BasicBlock(8, 8) if block is BasicBlock else Bottleneck(32, 8)
    torch.nn.init.zeros_(b.last_bn.weight)
    x = torch.rand(2, b.last_bn.num_features, 4, 4)
    torch.testing.assert_close(b.eval()(x), x)
    default = ResNet(block, (1, 1, 1, 1), in_channels=3, stem="cifar")
    assert all(torch.count_nonzero(m.last_bn.weight) > 0 for m in default.modules() if isinstance(m, block))
    assert create_backbone("resnet18-cifar", 3, 32, zero_init_residual=True).layer1[0].bn2.weight.abs().sum() == 0


# --- convnet ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size,strides", [(8, (1, 1, 2)), (28, (2, 2, 2)), (32, (2, 2, 2))])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_convnet_downsamples_to_at_most_4(size, strides, in_channels):
    model = ConvNet(in_channels, size)
    assert model.strides == strides
    with torch.no_grad():
        fmap = model.eval().forward_features(torch.randn(2, in_channels, size, size))
    assert fmap.shape[1] == model.feature_dim == 128
    assert tuple(fmap.shape[2:]) == model.final_size
    assert max(model.final_size) <= 4 and min(model.final_size) >= 1
    assert model.final_size == {8: (4, 4), 28: (4, 4), 32: (4, 4)}[size]


def test_convnet_larger_and_tiny_inputs():
    big = ConvNet(3, 64)  # 64 -> 32 -> 16 -> 8 -> 4 needs a 4th stride-2 stage
    assert big.strides == (2, 2, 2, 2) and big.final_size == (4, 4)
    tiny = ConvNet(1, 4)
    assert tiny.strides == (1, 1, 1) and tiny.final_size == (4, 4)
    rect = ConvNet(1, (8, 32))
    with torch.no_grad():
        assert rect.eval()(torch.randn(2, 1, 8, 32)).shape == (2, 128)


def test_convnet_kwargs():
    assert create_backbone("convnet", 1, 28, feature_dim=64).feature_dim == 64
    wide = create_backbone("convnet", 1, 28, width=2)
    assert wide.feature_dim == 256
    assert wide.stages[0][0][0].out_channels == 64
    with torch.no_grad():
        assert create_backbone("convnet", 1, 8, feature_dim=32).eval()(torch.randn(3, 1, 8, 8)).shape == (3, 32)
    with pytest.raises(ValueError):
        create_backbone("convnet", 1, 28, width=0)


# --- mlp-simvae ---------------------------------------------------------------------------------


def test_mlp_simvae_architecture():
    model = get_model("mlp-simvae", 1, 28)
    assert isinstance(model, MLPEncoder)
    widths = [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [2000, 500, 500]
    assert n_params(model) == (784 * 2000 + 2000) + (2000 * 500 + 500) + (500 * 500 + 500)
    assert create_backbone("mlp-simvae", 3, 32).net[0].in_features == 3 * 32 * 32
    with pytest.raises(ValueError, match="expected inputs"):
        model(torch.randn(2, 1, 32, 32))
