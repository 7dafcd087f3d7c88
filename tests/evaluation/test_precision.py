"""Mixed precision where it cannot change results (#11): features extracted under bf16 autocast agree with
float32 ones, and the delicate maths (KL, log-sum-exp, posterior scores) stays float32 inside autocast."""

import torch
import torch.nn.functional as F

from probssl.config import load_config
from probssl.evaluation import extract
from probssl.methods import create_method
from probssl.train import autocast

CPU = torch.device("cpu")


def _method(preset: str):
    torch.manual_seed(0)
    return create_method(load_config(preset), (1, 8, 8)).eval()


def test_bf16_features_match_float32_features():
    method = _method("simclr-digits")
    images = (torch.rand(64, 1, 8, 8) * 255).to(torch.uint8)
    fp32 = extract(method, images, "backbone", 32, "cpu", "fp32")
    bf16 = extract(method, images, "backbone", 32, "cpu", "bf16")
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    cosine = F.cosine_similarity(fp32, bf16, dim=1)
    assert cosine.min() > 0.995, cosine.min()  # bf16 keeps 8 bits of mantissa: ~0.4 % per value
    assert not torch.equal(fp32, bf16)  # the autocast really ran in bf16


def test_loss_terms_stay_float32_and_close_under_bf16_autocast():
    method = _method("vsimclr-digits").train()
    views = torch.rand(2, 16, 1, 8, 8)
    torch.manual_seed(1)
    reference = method(views)
    torch.manual_seed(1)
    with autocast(CPU, "bf16"):
        mixed = method(views)
    for name, value in mixed.items():
        assert value.dtype == torch.float32, name  # KL and the contrastive log-sum-exp are computed in float32
        assert torch.isfinite(value)
        torch.testing.assert_close(value, reference[name], rtol=0.05, atol=0.02)


def test_posterior_scores_from_bf16_heads_match_float32_ones():
    method = _method("vsimclr-digits")
    x = torch.rand(8, 1, 8, 8)
    with torch.no_grad():
        reference = method.posterior(x)
        with autocast(CPU, "bf16"):
            mixed = method.posterior(x)
    for kind in method.posterior_class.uncertainty_kinds():
        u, ref = mixed.uncertainty(kind).float(), reference.uncertainty(kind)
        assert torch.isfinite(u).all(), kind
        torch.testing.assert_close(u, ref, rtol=0.05, atol=0.05 * float(ref.abs().mean()), msg=kind)
