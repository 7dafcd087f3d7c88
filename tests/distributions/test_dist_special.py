"""log I_d(t) quadrature against independent float64 oracles (scipy quad, mpmath, recursion)."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, special

from probssl.distributions import (
    gauss_legendre,
    log_projected_normal_integral,
    log_projected_normal_integral_scaled,
    log_sphere_area,
)


def scipy_log_integral(t: float, d: int) -> float:
    """Oracle: log ∫_0^∞ s^{d-1} exp(-s²/2 + s t) ds by adaptive Gauss–Kronrod (scipy.quad).

    Integrates exp(f(s) - f(s0)) in the plain s variable over the window where the integrand
    exceeds e^-60 of its peak (found with brentq), with the mode as a breakpoint.
    """

    def f(s):
        return (d - 1) * np.log(s) - 0.5 * s * s + s * t

    s0 = (t + math.sqrt(t * t + 4 * (d - 1))) / 2 if t >= 0 else 2 * (d - 1) / (math.sqrt(t * t + 4 * (d - 1)) - t)
    f0 = f(s0)
    lo = optimize.brentq(lambda s: f(s) - f0 + 60.0, 1e-300, s0, xtol=1e-300, rtol=1e-15)
    hi = optimize.brentq(lambda s: f(s) - f0 + 60.0, s0, s0 + 20.0, rtol=1e-15)
    val, err = integrate.quad(lambda s: math.exp(f(s) - f0), lo, hi, points=[s0], epsabs=0.0, epsrel=1e-13, limit=500)
    assert err < 1e-11 * val
    return f0 + math.log(val)


D_GRID = [2, 3, 10, 128, 512]
T_GRID = [-30.0, -3.0, 0.0, 3.0, 30.0, 300.0]


@pytest.mark.parametrize("d", D_GRID)
def test_log_integral_matches_scipy_quad(d):
    t = torch.tensor(T_GRID + [-1000.0, -0.1, 0.1, 1000.0], dtype=torch.float64)
    got = log_projected_normal_integral(t, d)
    for i, ti in enumerate(t.tolist()):
        ref = scipy_log_integral(ti, d)
        assert abs(got[i].item() - ref) <= 1e-9 * max(1.0, abs(ref)), (d, ti, got[i].item(), ref)


def test_log_integral_matches_mpmath_parabolic_cylinder():
    """I_d(t) = Γ(d) e^{t²/4} D_{-d}(-t) at 30 significant digits (extreme t and d)."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 30
    cases = [(2, -1000.0), (2, 1000.0), (512, -1000.0), (512, 1000.0), (64, -7.5), (5, 12.25)]
    t = torch.tensor([c[1] for c in cases], dtype=torch.float64)
    for i, (d, ti) in enumerate(cases):
        got = log_projected_normal_integral(t[i : i + 1], d).item()
        m = mpmath.mpf(ti)
        ref = float(mpmath.loggamma(d) + m * m / 4 + mpmath.log(mpmath.pcfd(-d, -m)))
        assert abs(got - ref) <= 1e-12 * max(1.0, abs(ref)), (d, ti, got, ref)


def test_log_integral_at_zero_closed_form():
    # I_d(0) = 2^{d/2-1} Γ(d/2)
    for d in [2, 3, 7, 64, 511, 512]:
        ref = (d / 2 - 1) * math.log(2) + math.lgamma(d / 2)
        got = log_projected_normal_integral(torch.zeros(1, dtype=torch.float64), d).item()
        assert got == pytest.approx(ref, rel=1e-14, abs=1e-13)


@pytest.mark.parametrize("t", [0.5, 3.0, 30.0])
def test_log_integral_satisfies_recursion_for_positive_t(t):
    """I_d = t I_{d-1} + (d-2) I_{d-2}: both terms positive for t > 0, so stable in log space."""
    ds = list(range(2, 41))
    tt = torch.tensor([t], dtype=torch.float64)
    L = {d: log_projected_normal_integral(tt, d).item() for d in ds}
    for d in ds[2:]:
        rhs = np.logaddexp(math.log(t) + L[d - 1], math.log(d - 2) + L[d - 2])
        assert L[d] == pytest.approx(rhs, rel=1e-13, abs=1e-12)


def test_log_integral_d2_closed_form():
    """I_2(t) = 1 + t √(π/2) erfcx(-t/√2) (stable for t ≥ -3 where the two terms do not cancel)."""
    ts = np.linspace(-3, 25, 57)  # erfcx(-t/√2) ~ 2e^{t²/2} overflows past t ≈ 37
    ref = np.log1p(ts * math.sqrt(math.pi / 2) * special.erfcx(-ts / math.sqrt(2)))
    got = log_projected_normal_integral(torch.tensor(ts), 2).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13)


def test_scaled_variant_equals_log_integral_minus_half_t2():
    t = torch.tensor([-200.0, -5.0, -0.3, 0.0, 0.7, 9.0, 250.0], dtype=torch.float64)
    for d in [2, 17, 300]:
        a = log_projected_normal_integral_scaled(t, d)
        b = log_projected_normal_integral(t, d) - 0.5 * t * t
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-9)


def test_float32_close_to_float64():
    """float32 is within a few ulps of the magnitudes it adds (|log I| and ~2d)."""
    t32 = torch.linspace(-1000, 1000, 301, dtype=torch.float64).float()
    for d in [2, 128, 512]:
        ref = log_projected_normal_integral(t32.double(), d)  # same (rounded) inputs
        got = log_projected_normal_integral(t32, d)
        assert got.dtype == torch.float32
        tol = 4e-7 * (ref.abs() + 2 * d + 1)  # ~3.4 float32 eps
        assert ((got.double() - ref).abs() <= tol).all(), d


def test_half_inputs_keep_dtype_and_shapes_broadcast():
    t = torch.randn(3, 4, 5)
    assert log_projected_normal_integral(t, 10).shape == (3, 4, 5)
    assert log_projected_normal_integral(t.bfloat16(), 10).dtype == torch.bfloat16
    assert log_projected_normal_integral(torch.tensor(1.5), 3).shape == ()


def test_invalid_dimension_raises():
    with pytest.raises(ValueError):
        log_projected_normal_integral(torch.zeros(2), 1)
    with pytest.raises(ValueError):
        log_projected_normal_integral(torch.zeros(2), 2.5)


@pytest.mark.parametrize("d", [2, 3, 32, 512])
def test_gradcheck_log_integral(d):
    t = torch.tensor([-40.0, -2.5, -0.2, 0.0, 0.3, 4.0, 60.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: log_projected_normal_integral(x, d), (t,), eps=1e-6, atol=1e-7, rtol=1e-6)
    assert torch.autograd.gradgradcheck(
        lambda x: log_projected_normal_integral(x, d), (t,), eps=1e-6, atol=1e-6, rtol=1e-5
    )
    assert torch.autograd.gradcheck(
        lambda x: log_projected_normal_integral_scaled(x, d), (t,), eps=1e-6, atol=1e-7, rtol=1e-6
    )


def test_gradient_is_radial_mean():
    """d/dt log I_d(t) = E[s] under the density ∝ s^{d-1} e^{-s²/2 + st}; check via scipy."""
    for d, t in [(2, -50.0), (3, 0.0), (128, 5.0), (512, -20.0)]:
        tt = torch.tensor([t], dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(log_projected_normal_integral(tt, d).sum(), tt)
        lo = scipy_log_integral(t, d)
        # E[s] = I_{d+1}(t) / I_d(t)
        ref = math.exp(scipy_log_integral(t, d + 1) - lo)
        assert g.item() == pytest.approx(ref, rel=1e-9)


def test_log_sphere_area_known_values():
    assert log_sphere_area(2) == pytest.approx(math.log(2 * math.pi), rel=1e-15)
    assert log_sphere_area(3) == pytest.approx(math.log(4 * math.pi), rel=1e-15)
    assert log_sphere_area(4) == pytest.approx(math.log(2 * math.pi**2), rel=1e-15)
    dt = torch.tensor([2.0, 3.0, 4.0], dtype=torch.float64)
    torch.testing.assert_close(
        log_sphere_area(dt),
        torch.tensor([math.log(2 * math.pi), math.log(4 * math.pi), math.log(2 * math.pi**2)], dtype=torch.float64),
    )


def test_gauss_legendre_exact_for_polynomials():
    x, logw = gauss_legendre(16, torch.float64)
    w = logw.exp()
    assert w.sum().item() == pytest.approx(2.0, rel=1e-14)
    for k in range(0, 32):
        exact = 0.0 if k % 2 else 2.0 / (k + 1)
        assert (w * x**k).sum().item() == pytest.approx(exact, abs=1e-14)


def test_extreme_arguments_have_finite_values_and_gradients():
    """Far outside the design range (|t| = 1e5, float32) nothing overflows or turns NaN."""
    t = torch.tensor([1e5, -1e5, 0.0], requires_grad=True)
    v = log_projected_normal_integral(t, 2)
    v.sum().backward()
    assert torch.isfinite(v).all() and torch.isfinite(t.grad).all()
    # d/dt log I = E[s] → t for t → ∞ and d/|t| (Gamma(d, |t|) mean) for t → -∞; √(π/2) at t = 0, d = 2
    torch.testing.assert_close(t.grad, torch.tensor([1e5, 2e-5, math.sqrt(math.pi / 2)]), rtol=1e-4, atol=0)
