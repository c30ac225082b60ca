"""Inception-v3 as in TensorFlow's graph of 2015-12-05, the feature network of FID, KID and IS.

The architecture is the one every FID implementation uses (Szegedy et al. 2016, "Rethinking the Inception
Architecture"), with the details of that particular TF graph:
  - batch norm without a learned scale (gamma = 1) and eps = 1e-3, after bias-free convolutions;
  - the average pools inside the blocks ignore padding (count_include_pad=False);
  - the last block (Mixed_7c) pools its side branch with a max pool, not an average pool;
  - 1008 output classes.

Parameter names follow torchvision's Inception3 (as in pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`),
so that file loads as it is; NVIDIA's names are mapped in `nvidia_to_ours`.

Input convention (NVIDIA's detector): images are [N, 3, H, W] with values in [0, 255] (uint8 or float); they are
resized to 299x299 the way TF's `resize_bilinear` did it in 2015 (no half-pixel offset, clamped at the border)
and scaled by (x - 128) / 128.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stylegan.core.misc import assert_shape

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008


class ConvBN(nn.Module):
    """Convolution without bias, then batch norm (inference statistics), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3(x: torch.Tensor) -> torch.Tensor:
    # 3x3 average that divides by the number of pixels inside the image, as TF's SAME pooling does.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """35x35 block (Mixed_5b/c/d): 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, cin: int, pool_channels: int):
        super().__init__()
        self.branch1x1 = ConvBN(cin, 64, 1)
        self.branch5x5_1 = ConvBN(cin, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(cin, pool_channels, 1)

    def forward(self, x):
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg3(x)),
        ], dim=1)


class BlockB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a)."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x):
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], dim=1)


class BlockC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (Mixed_6b..e)."""

    def __init__(self, cin: int, mid: int):
        super().__init__()
        self.branch1x1 = ConvBN(cin, 192, 1)
        self.branch7x7_1 = ConvBN(cin, mid, 1)
        self.branch7x7_2 = ConvBN(mid, mid, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(mid, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(cin, mid, 1)
        self.branch7x7dbl_2 = ConvBN(mid, mid, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(mid, mid, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(mid, mid, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(mid, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x):
        single = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            double = layer(double)
        return torch.cat([self.branch1x1(x), single, double, self.branch_pool(_avg3(x))], dim=1)


class BlockD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a)."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = ConvBN(cin, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x):
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], dim=1)


class BlockE(nn.Module):
    """8x8 block with split 1x3/3x1 outputs (Mixed_7b with an average pool, Mixed_7c with a max pool)."""

    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvBN(cin, 320, 1)
        self.branch3x3_1 = ConvBN(cin, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x):
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(a), self.branch3x3_2b(a),
            self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b),
            self.branch_pool(pooled),
        ], dim=1)


def tf_resize_bilinear(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """Resize [N, C, H, W] to size x size the way TF 1.x resize_bilinear did (align_corners=False, no half pixel).

    Output pixel i reads the input at position i * in / out (not (i + 0.5) * in / out - 0.5), and positions past
    the last pixel take its value. This is the resize NVIDIA's FID detector applies; at 299x299 it is the identity.
    """
    n, _c, h, w = x.shape
    if h == size and w == size:
        return x

    def coords(length: int) -> torch.Tensor:
        src = torch.arange(size, device=x.device, dtype=torch.float32) * (length / size)
        return (2 * src + 1) / length - 1  # grid_sample's normalised coordinate of pixel `src` (align_corners=False)

    gy, gx = torch.meshgrid(coords(h), coords(w), indexing="ij")
    grid = torch.stack([gx, gy], dim=-1).to(x.dtype).unsqueeze(0).expand(n, size, size, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionV3(nn.Module):
    """The FID Inception network. `forward` gives the 2048-d pool features; `logits` the 1008-way classifier."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = BlockA(192, 32)
        self.Mixed_5c = BlockA(256, 64)
        self.Mixed_5d = BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, 128)
        self.Mixed_6c = BlockC(768, 160)
        self.Mixed_6d = BlockC(768, 160)
        self.Mixed_6e = BlockC(768, 192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, max_pool=False)
        self.Mixed_7c = BlockE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, img: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] in [0, 255] -> [N, 3, 299, 299] in [-1, 1)."""
        assert_shape(img, [None, 3, None, None])
        x = tf_resize_bilinear(img.to(torch.float32))
        return (x - 128) / 128

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Pool features [N, 2048] of images [N, 3, H, W] with values in [0, 255]."""
        return self.trunk(self.preprocess(img))

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Pool features [N, 2048] of already preprocessed inputs [N, 3, 299, 299]."""
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
            x = getattr(self, name)(x)
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                     "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return x.mean(dim=[2, 3])  # [N, 2048]: the 8x8 average pool of the TF graph ('pool_3')

    def logits(self, features: torch.Tensor, bias: bool = True) -> torch.Tensor:
        """Class logits [N, 1008]. IS uses them without the bias, as the original implementation did."""
        return F.linear(features, self.fc.weight, self.fc.bias if bias else None)


# NVIDIA's TorchScript translation names blocks after the TF graph ('mixed_3', 'tower_1', ...). Each entry maps
# one of its convolution layers onto ours; each of them holds weight, beta, mean and var (no gamma).
_NV_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
            "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_NV_MIXED = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
             "Mixed_7a", "Mixed_7b", "Mixed_7c"]
_NV_BLOCK = {
    "A": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
          "tower_2.conv": "branch_pool"},
    "B": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    "C": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
          "tower.conv_2": "branch7x7_3",
          **{f"tower_1.{'conv' if i == 0 else f'conv_{i}'}": f"branch7x7dbl_{i + 1}" for i in range(5)},
          "tower_2.conv": "branch_pool"},
    "D": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2",
          **{f"tower_1.{'conv' if i == 0 else f'conv_{i}'}": f"branch7x7x3_{i + 1}" for i in range(4)}},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
          "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
          "tower_2_conv": "branch_pool"},
}
_NV_KINDS = "AAABCCCCDEE"


def nvidia_layer_map() -> dict[str, str]:
    """NVIDIA layer path ('layers.mixed_3.tower.conv_1') -> our ConvBN path ('Mixed_6a.branch3x3dbl_2')."""
    table = {f"layers.{nv}": ours for nv, ours in _NV_STEM.items()}
    for i, (ours_block, kind) in enumerate(zip(_NV_MIXED, _NV_KINDS)):
        nv_block = "mixed" if i == 0 else f"mixed_{i}"
        for nv, ours in _NV_BLOCK[kind].items():
            table[f"layers.{nv_block}.{nv}"] = f"{ours_block}.{ours}"
    return table


def nvidia_to_ours(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a state dict of NVIDIA's Inception detector into ours (gamma, absent there, is 1)."""
    out: dict[str, torch.Tensor] = {}
    for nv, ours in nvidia_layer_map().items():
        out[f"{ours}.conv.weight"] = tensors[f"{nv}.weight"]
        out[f"{ours}.bn.bias"] = tensors[f"{nv}.beta"]
        out[f"{ours}.bn.running_mean"] = tensors[f"{nv}.mean"]
        out[f"{ours}.bn.running_var"] = tensors[f"{nv}.var"]
        out[f"{ours}.bn.weight"] = torch.ones_like(tensors[f"{nv}.beta"])
    out["fc.weight"] = tensors["output.weight"]
    out["fc.bias"] = tensors["output.bias"]
    return out


def load_state(model: InceptionV3, tensors: dict[str, torch.Tensor], source: str) -> InceptionV3:
    """Load our-layout tensors, checking that every name and shape is there (num_batches_tracked is optional)."""
    from stylegan.core.errors import StyleGANError

    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(k for k in set(tensors) - set(expected) if not k.endswith("num_batches_tracked"))
    if missing or unexpected:
        raise StyleGANError(f"{source} is not an Inception-v3 (2015-12-05) weights file: "
                            f"{len(missing)} tensors missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
                            f"(e.g. {unexpected[:2]}); use pytorch-fid's pt_inception-2015-12-05-6726825d.pth, "
                            "NVIDIA's inception-2015-12-05.pkl or our inception-2015-12-05.safetensors")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise StyleGANError(f"{source}: tensor {k} has shape {tuple(tensors[k].shape)}, expected {tuple(v.shape)}; "
                                "the file is not the 2015-12-05 Inception-v3")
    model.load_state_dict({k: tensors[k].to(torch.float32) for k in expected}, strict=False, assign=True)
    for module in model.modules():  # unused in inference; zero rather than whatever memory held
        if isinstance(module, nn.BatchNorm2d):
            module.num_batches_tracked.zero_()
    return model
