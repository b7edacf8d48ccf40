"""Gradients, Hessians and critical points of a surface f(x, y), with the lecture notes' second-derivative test.

Derivatives come from torch.autograd. Points are batched: f is elementwise, so the gradient of
sum(f) with respect to the tensor x holds each point's own ∂f/∂x, and differentiating those again
gives each point's second derivatives.

The notes' test at a critical point (P = ∂f/∂x = 0, Q = ∂f/∂y = 0), with R = f_xx, S = f_xy, T = f_yy:
RT − S² > 0 and R > 0: minimum; RT − S² > 0 and R < 0: maximum; RT − S² < 0: saddle point;
RT − S² = 0: the test fails (it cannot tell).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

DTYPE = torch.float64  # 1e-6 agreement with closed forms needs double precision


def _d(out: torch.Tensor, inputs):
    """d(sum out)/d(inputs), kept differentiable; zeros where out does not depend on an input."""
    if not out.requires_grad:
        return tuple(torch.zeros_like(t) for t in inputs)
    return torch.autograd.grad(out.sum(), inputs, create_graph=True, materialize_grads=True)


def _leaves(x, y):
    x = torch.as_tensor(x, dtype=DTYPE).detach().clone().requires_grad_(True)
    y = torch.as_tensor(y, dtype=DTYPE).detach().clone().requires_grad_(True)
    return torch.broadcast_tensors(x, y) if x.shape != y.shape else (x, y)


def derivatives(f, x, y):
    """(value, gradient [..., 2], Hessian [..., 2, 2]) of f at the points (x, y), by autograd."""
    x, y = _leaves(x, y)
    value = f(x, y)
    fx, fy = _d(value, (x, y))
    fxx, fxy = _d(fx, (x, y))
    fyx, fyy = _d(fy, (x, y))
    grad = torch.stack([fx, fy], dim=-1)
    hess = torch.stack([torch.stack([fxx, fxy], dim=-1), torch.stack([fyx, fyy], dim=-1)], dim=-2)
    return value.detach(), grad.detach(), hess.detach()


def gradient(f, x, y) -> torch.Tensor:
    """∇f = [∂f/∂x, ∂f/∂y] at the points (x, y), shape [..., 2]."""
    return derivatives(f, x, y)[1]


def hessian(f, x, y) -> torch.Tensor:
    """[[f_xx, f_xy], [f_yx, f_yy]] at the points (x, y), shape [..., 2, 2]."""
    return derivatives(f, x, y)[2]


def classify(R: float, S: float, T: float) -> str:
    """The notes' second-derivative test: minimum, maximum, saddle, or "test fails" when RT − S² = 0."""
    D = R * T - S * S
    # "= 0" up to rounding: relative to the size of the second derivatives, with a floor for tiny ones
    if abs(D) <= max(1e-9 * (R * R + 2 * S * S + T * T), 1e-12):
        return "test fails"
    if D < 0:
        return "saddle"
    return "minimum" if R > 0 else "maximum"


@dataclass
class CriticalPoint:
    x: float
    y: float
    value: float
    R: float  # f_xx
    S: float  # f_xy
    T: float  # f_yy
    D: float  # RT − S²
    kind: str  # minimum | maximum | saddle | test fails

    def as_dict(self) -> dict:
        return asdict(self)


def critical_point(f, x: float, y: float) -> CriticalPoint:
    """The second-derivative test at (x, y) (which the caller knows or found to be critical)."""
    value, _, h = derivatives(f, x, y)
    R, S, T = h[0, 0].item(), h[0, 1].item(), h[1, 1].item()
    return CriticalPoint(float(x), float(y), value.item(), R, S, T, R * T - S * S, classify(R, S, T))


def find_critical_points(f, bounds, n: int = 15, iters: int = 100, tol: float = 1e-8) -> list[CriticalPoint]:
    """Critical points inside `bounds` [[x0, x1], [y0, y1]], found by Newton's method on ∇f = 0 from an
    n x n grid of starts.

    Newton's step p ← p − H⁻¹∇f goes to the nearby zero of the gradient whatever its kind (minimum,
    maximum or saddle), unlike descent, which only finds minima. A pseudo-inverse copes with singular
    Hessians; steps are capped at the box size so a start near a flat spot cannot fly off to infinity.
    """
    (x0, x1), (y0, y1) = bounds
    gx, gy = torch.meshgrid(torch.linspace(x0, x1, n, dtype=DTYPE), torch.linspace(y0, y1, n, dtype=DTYPE),
                            indexing="ij")
    p = torch.stack([gx.ravel(), gy.ravel()], dim=-1)
    size = max(x1 - x0, y1 - y0)
    for _ in range(iters):
        _, g, h = derivatives(f, p[:, 0], p[:, 1])
        step = (torch.linalg.pinv(h) @ g.unsqueeze(-1)).squeeze(-1)
        norm = step.norm(dim=-1, keepdim=True)
        step = torch.where(norm > size, step * size / norm, step)
        p = p - torch.nan_to_num(step, nan=0.0, posinf=0.0, neginf=0.0)
    _, g, _ = derivatives(f, p[:, 0], p[:, 1])
    scale = 1.0 + p.abs().max(dim=-1).values  # |∇f| grows with |p| on polynomial surfaces
    margin = 1e-9 * size
    ok = (g.norm(dim=-1) <= tol * scale) & torch.isfinite(p).all(dim=-1)
    ok &= (p[:, 0] >= x0 - margin) & (p[:, 0] <= x1 + margin) & (p[:, 1] >= y0 - margin) & (p[:, 1] <= y1 + margin)
    found: list[torch.Tensor] = []
    for q in p[ok]:  # one point per cluster of converged starts
        if all((q - r).norm() > 1e-6 * size for r in found):
            found.append(q)
    points = [critical_point(f, q[0].item(), q[1].item()) for q in found]
    return sorted(points, key=lambda c: (c.value, c.x, c.y))
