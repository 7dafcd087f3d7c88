"""SimVAE's CIFAR / CelebA networks, layer by layer: shapes after every stage and parameter counts worked out
by hand from the official architecture (conv k x k: cin * cout * k^2 (+ cout bias); BN: 2 * c)."""

import pytest
import torch

from probssl.config import from_dict
from probssl.methods import create_method
from probssl.models import create_backbone, create_decoder


def conv(cin, cout, k, bias=False):
    return cin * cout * k * k + (cout if bias else 0)


def bn(c):
    return 2 * c


def basic_block(cin, cout, shortcut):
    own = conv(cin, cout, 3) + bn(cout) + conv(cout, cout, 3) + bn(cout)
    return own + (conv(cin, cout, 1) + bn(cout) if shortcut else 0)


def encoder_params(c, small=True):
    stem = conv(c, 64, 3, bias=True) if small else conv(c, 64, 4)
    total, cin = stem + bn(64), 64
    for width in (32, 64, 128):
        total += basic_block(cin, width, True) + basic_block(width, width, False)
        cin = width
    return total


def up_block(cin, cout, shortcut):  # transposed convs have the same weight count
    return basic_block(cin, cout, shortcut)


def decoder_params(d, c, side):
    total = d * 512 * side * side + 512 * side * side  # Linear with bias
    for cin, cout in ((512, 256), (256, 128), (128, 64)):
        total += up_block(cin, cin, False) + up_block(cin, cout, True)
    total += 2 * up_block(64, 64, False)
    return total + bn(3) + conv(64, c, 7, bias=True)


@pytest.mark.parametrize("channels, size", [(3, 32), (1, 28), (3, 64)])
def test_encoder_shapes_and_parameter_count(channels, size):
    net = create_backbone("simvae-resnet18", in_channels=channels, image_size=size).eval()
    x = torch.randn(2, channels, size, size)
    shapes = []
    modules = [*net.stem, *net.stages]
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:]))) for m in modules]
    features = net(x)
    for h in hooks:
        h.remove()
    first = {32: 30, 28: 26, 64: 61}[size]  # the stem conv has no padding (3x3, or 4x4 above 32 px)
    pooled = (first - 1) // 2 + 1
    half, quarter = (pooled - 1) // 2 + 1, ((pooled - 1) // 2) // 2 + 1
    assert shapes == [
        (64, first, first),
        (64, first, first),
        (64, first, first),
        (64, pooled, pooled),
        (32, pooled, pooled),
        (64, half, half),
        (128, quarter, quarter),
    ]
    assert features.shape == (2, 128 * quarter * quarter) and net.feature_dim == features.shape[1]
    if size == 32:
        assert net.feature_dim == 2048  # the official head is Linear(2048, 2d)
    if size == 64:
        assert net.feature_dim == 8192  # = 512 * 4 * 4, the official CelebA head's input
    assert sum(p.numel() for p in net.parameters()) == encoder_params(channels, small=size <= 32)


@pytest.mark.parametrize("channels, size", [(3, 32), (3, 64), (1, 32)])
def test_decoder_shapes_and_parameter_count(channels, size):
    net = create_decoder("simvae-resnet18", 64, (channels, size, size)).eval()
    shapes = []
    hooks = [s.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:]))) for s in net.stages]
    out = net(torch.randn(2, 64))
    for h in hooks:
        h.remove()
    s = size // 16
    assert shapes == [(256, 2 * s, 2 * s), (128, 4 * s, 4 * s), (64, 8 * s, 8 * s), (64, 8 * s, 8 * s)]
    assert out.shape == (2, channels, size, size)
    assert sum(p.numel() for p in net.parameters()) == decoder_params(64, channels, s)


def test_decoder_refuses_other_sizes_naming_the_fix():
    with pytest.raises(ValueError, match="set model.decoder: conv or resnet"):
        create_decoder("simvae-resnet18", 8, (3, 28, 28))


def test_simvae_on_its_cifar_networks_takes_a_training_step():
    config = from_dict(
        {
            "method": {"name": "simvae"},
            "model": {"backbone": "simvae-resnet18", "embed_dim": 64, "head_layers": 1},
            "data": {"name": "cifar10"},
        }
    )
    method = create_method(config, (3, 32, 32))
    assert type(method.decoder).__name__ == "SimVAEResNetDecoder"  # decoder auto: the backbone's own
    head = [m for m in method.head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in head] == [(2048, 128)]  # the official Linear(2048, 2d)
    views = torch.rand(2, 4, 3, 32, 32)  # [V, N, C, H, W]
    terms = method(views)
    loss = sum(terms.values())
    loss.backward()
    used = [p for n, p in method.decoder.named_parameters() if not n.startswith("unused_bn")]
    assert torch.isfinite(loss) and all(p.grad is not None for p in used)
