"""Per-sample homogeneous matrices for the geometric (3x3) and colour (4x4) parts of the ADA pipeline.

Every builder takes per-sample parameters as tensors of shape [N] and returns [N, 3, 3] or [N, 4, 4].
Geometric matrices act on pixel coordinates (x right, y down, origin at the image centre); colour matrices
act on (r, g, b, 1).
"""
from __future__ import annotations

import math

import torch


def batched_matrix(rows: list[list[torch.Tensor | float]], like: torch.Tensor) -> torch.Tensor:
    """Assemble a matrix whose entries are per-sample tensors [N] or plain numbers. Returns [N, R, C]."""
    n = like.shape[0]
    entries = [e if isinstance(e, torch.Tensor) else torch.full([n], float(e), dtype=like.dtype, device=like.device)
               for row in rows for e in row]
    return torch.stack(entries, dim=-1).reshape(n, len(rows), len(rows[0]))


def translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    return batched_matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    return batched_matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def rotate2d(theta: torch.Tensor) -> torch.Tensor:
    """[[cos, -sin], [sin, cos]]. With y pointing down, theta > 0 turns coordinates clockwise on screen."""
    c, s = torch.cos(theta), torch.sin(theta)
    return batched_matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta)


def quarter_turn2d(k: torch.Tensor) -> torch.Tensor:
    """rotate2d(k * pi / 2) for integer k in {0, 1, 2, 3}, with exact zeros and ones (torch.cos(pi / 2) is not 0)."""
    k = k.long() % 4
    cos = torch.tensor([1.0, 0.0, -1.0, 0.0], device=k.device)[k]
    sin = torch.tensor([0.0, 1.0, 0.0, -1.0], device=k.device)[k]
    return batched_matrix([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], cos)


# The luma axis: colour space is rotated, reflected and scaled around the grey diagonal r = g = b.
LUMA_AXIS = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)


def _luma_terms(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(v v^T, the cross-product matrix [v]x, diag(1, 1, 1, 0)), each [4, 4], for the luma axis v."""
    v = LUMA_AXIS.to(dtype=like.dtype, device=like.device)
    vvt = torch.outer(v, v)
    cross = torch.zeros(4, 4, dtype=like.dtype, device=like.device)
    cross[0, 1], cross[0, 2], cross[1, 2] = -v[2], v[1], -v[0]
    cross = cross - cross.T
    rgb = torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=like.dtype, device=like.device))
    return vvt, cross, rgb


def brightness3d(b: torch.Tensor) -> torch.Tensor:
    """Add b to every colour channel."""
    return batched_matrix([[1, 0, 0, b], [0, 1, 0, b], [0, 0, 1, b], [0, 0, 0, 1]], b)


def contrast3d(c: torch.Tensor) -> torch.Tensor:
    """Scale colours by c around zero (the middle of the [-1, 1] range)."""
    return batched_matrix([[c, 0, 0, 0], [0, c, 0, 0], [0, 0, c, 0], [0, 0, 0, 1]], c)


def lumaflip3d(i: torch.Tensor) -> torch.Tensor:
    """i = 1: reflect colours through the plane orthogonal to the luma axis (a Householder reflection,
    I - 2 v v^T), which inverts luma and keeps hue; i = 0: identity."""
    vvt, _, _ = _luma_terms(i)
    eye = torch.eye(4, dtype=i.dtype, device=i.device)
    return eye - 2 * vvt * i[:, None, None]


def hue3d(theta: torch.Tensor) -> torch.Tensor:
    """Rotate colours by theta around the luma axis (Rodrigues' formula), leaving luma unchanged."""
    vvt, cross, rgb = _luma_terms(theta)
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    homogeneous = torch.eye(4, dtype=theta.dtype, device=theta.device) - rgb
    return rgb * c + cross * s + vvt * (1 - c) + homogeneous


def saturation3d(s: torch.Tensor) -> torch.Tensor:
    """Scale the chroma (the part of a colour orthogonal to the luma axis) by s; s = 0 gives grey."""
    vvt, _, rgb = _luma_terms(s)
    homogeneous = torch.eye(4, dtype=s.dtype, device=s.device) - rgb
    return vvt + (rgb - vvt) * s[:, None, None] + homogeneous
