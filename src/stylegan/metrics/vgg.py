"""VGG16 (Simonyan & Zisserman 2015) in torchvision's layout, for precision/recall and for LPIPS in PPL.

- Precision/recall (Kynkaanniemi et al. 2019) embeds images with VGG16's second fully connected layer
  (fc7, 4096-d, after its ReLU), on 224x224 inputs with ImageNet normalisation.
- PPL (Karras et al. 2019) measures LPIPS (Zhang et al. 2018, version 0.1, 'vgg'): the five ReLU outputs
  relu1_2 .. relu5_3, each unit-normalised over channels, weighted per channel by the learned linear heads,
  averaged over space and summed over layers.

Parameter names are torchvision's (`features.0.weight` .. `classifier.6.bias`); the LPIPS heads are the
`lin{k}.model.1.weight` tensors of the `lpips` package's `weights/v0.1/vgg.pth`, stored here as `lpips.lin{k}`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stylegan.core.errors import StyleGANError
from stylegan.core.misc import assert_shape

# Output channels of the 13 convolutions; 'M' is a 2x2 max pool.
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
LPIPS_TAPS = (3, 8, 15, 22, 29)            # indices in `features` of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
PR_SIZE = 224
PR_FEATURE_DIM = 4096

# ImageNet statistics torchvision's VGG16 was trained with (inputs in [0, 1]).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# LPIPS v0.1's input scaling for inputs in [-1, 1] (its ScalingLayer).
_LPIPS_SHIFT = (-0.030, -0.088, -0.188)
_LPIPS_SCALE = (0.458, 0.448, 0.450)


def _features() -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for v in _CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU()]
            cin = int(v)
    return nn.Sequential(*layers)


class LPIPSHeads(nn.Module):
    """The five per-channel weights of LPIPS v0.1 (1x1 convolutions without bias, stored flat)."""

    def __init__(self):
        super().__init__()
        for k, c in enumerate(LPIPS_CHANNELS):
            self.register_buffer(f"lin{k}", torch.zeros(c))

    def weights(self) -> list[torch.Tensor]:
        return [getattr(self, f"lin{k}") for k in range(len(LPIPS_CHANNELS))]


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    # Shrinking averages areas (anti-aliased); enlarging (small datasets such as CIFAR) is bilinear.
    if x.shape[2] == size and x.shape[3] == size:
        return x
    if x.shape[2] >= size and x.shape[3] >= size:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class VGG16(nn.Module):
    """torchvision's VGG16 plus LPIPS heads. `has_lpips` says whether the heads were loaded.

    fc=False leaves out the fully connected layers (120M of the 138M parameters), which LPIPS does not use.
    """

    def __init__(self, fc: bool = True):
        super().__init__()
        self.features = _features()
        if fc:
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(),
                nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
                nn.Linear(4096, 1000))
        self.lpips = LPIPSHeads()
        self.has_lpips = False   # set by load_state: the LPIPS heads were loaded
        self.has_fc = False      # set by load_state: fc6 and fc7 were loaded (precision/recall needs them)
        for name in ("imagenet_mean", "imagenet_std", "lpips_shift", "lpips_scale"):
            self.register_buffer(name, torch.zeros(1, 3, 1, 1), persistent=False)
        self.reset_constants()
        self.requires_grad_(False)
        self.eval()

    def reset_constants(self) -> None:
        """Fill the fixed normalisation buffers (again, after `to_empty`)."""
        for name, values in (("imagenet_mean", _IMAGENET_MEAN), ("imagenet_std", _IMAGENET_STD),
                             ("lpips_shift", _LPIPS_SHIFT), ("lpips_scale", _LPIPS_SCALE)):
            getattr(self, name).copy_(torch.tensor(values).view(1, 3, 1, 1))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Precision/recall features [N, 4096] (fc7 after ReLU) of images [N, 3, H, W] in [0, 255]."""
        if not self.has_fc:
            raise StyleGANError("precision/recall needs VGG16's fully connected layers (classifier.0 and .3); "
                                "use torchvision's vgg16-397923af.pth")
        assert_shape(img, [None, 3, None, None])
        x = _resize(img.to(torch.float32), PR_SIZE) / 255
        x = (x - self.imagenet_mean) / self.imagenet_std
        x = F.adaptive_avg_pool2d(self.features(x), 7).flatten(1)
        return self.classifier[:5](x)  # Linear, ReLU, Dropout (inactive), Linear, ReLU

    def _lpips_layers(self, img: torch.Tensor) -> list[torch.Tensor]:
        if not self.has_lpips:
            raise StyleGANError("LPIPS needs its linear heads (vgg.pth from the lpips package, or our "
                                "vgg16.safetensors); put one in the feature folder (--feature-dir)")
        assert_shape(img, [None, 3, None, None])
        x = (img.to(torch.float32) / 127.5 - 1 - self.lpips_shift) / self.lpips_scale
        outs = []
        for i, layer in enumerate(self.features[: LPIPS_TAPS[-1] + 1]):
            x = layer(x)
            if i in LPIPS_TAPS:
                outs.append(x / (x.square().sum(dim=1, keepdim=True).sqrt() + 1e-10))  # unit norm over channels
        return outs

    def lpips_embedding(self, img: torch.Tensor) -> torch.Tensor:
        """Flat vectors [N, D] whose squared distance is LPIPS: ||e(a) - e(b)||^2 == lpips(a, b).

        Each layer's normalised features are scaled by sqrt(head weight) per channel and by 1/sqrt(H*W), so
        the squared distance sums the weighted channel differences and averages them over space.
        """
        parts = []
        for feat, w in zip(self._lpips_layers(img), self.lpips.weights()):
            scale = w.clamp(min=0).sqrt().view(1, -1, 1, 1) / (feat.shape[2] * feat.shape[3]) ** 0.5
            parts.append((feat * scale).flatten(1))
        return torch.cat(parts, dim=1)

    def lpips_distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """LPIPS [N] between images in [0, 255], computed layer by layer as Zhang et al. define it."""
        total = 0
        for fa, fb, w in zip(self._lpips_layers(a), self._lpips_layers(b), self.lpips.weights()):
            total = total + ((fa - fb).square() * w.view(1, -1, 1, 1)).sum(dim=1).mean(dim=[1, 2])
        return total


def lpips_heads_from_package(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The lpips package's vgg.pth ({'lin0.model.1.weight': [1, C, 1, 1], ...}) in our names."""
    return {f"lpips.lin{k}": tensors[f"lin{k}.model.1.weight"].reshape(-1) for k in range(len(LPIPS_CHANNELS))}


def load_state(model: VGG16, tensors: dict[str, torch.Tensor], source: str, need_lpips: bool = False,
               need_fc: bool = True) -> VGG16:
    """Load torchvision-layout VGG16 tensors and the `lpips.lin{k}` heads, checking names and shapes.

    The convolutions are always required; fc6/fc7 (classifier.0, classifier.3) when `need_fc`, the heads when
    `need_lpips`. Whatever is present is loaded; fc8 (classifier.6) is never used.
    """
    expected = model.state_dict()
    groups = {
        "features": {k for k in expected if k.startswith("features.")},
        "fc": {k for k in expected if k.startswith(("classifier.0.", "classifier.3."))},
        "lpips": {k for k in expected if k.startswith("lpips.")},
        "fc8": {k for k in expected if k.startswith("classifier.6.")},
    }
    present = {name: bool(keys) and keys <= set(tensors) for name, keys in groups.items()}
    needs = [("features", True, "VGG16's convolutions (features.*)", "vgg16-397923af.pth"),
             ("fc", need_fc, "VGG16's fully connected layers (classifier.0, classifier.3)", "vgg16-397923af.pth"),
             ("lpips", need_lpips, "the LPIPS heads", "vgg.pth from the lpips package")]
    for name, needed, what, fix in needs:
        if needed and not present[name]:
            missing = sorted(groups[name] - set(tensors))
            raise StyleGANError(f"{source} lacks {what} (e.g. {missing[0]}); add {fix} to the feature folder "
                                "(--feature-dir)")
    keys = set().union(*(keys for name, keys in groups.items() if present[name]))
    for k in keys:
        if tuple(tensors[k].shape) != tuple(expected[k].shape):
            raise StyleGANError(f"{source}: tensor {k} has shape {tuple(tensors[k].shape)}, "
                                f"expected {tuple(expected[k].shape)}")
    model.load_state_dict({k: tensors[k].to(torch.float32) for k in keys}, strict=False, assign=True)
    model.has_lpips, model.has_fc = present["lpips"], present["fc"]
    return model
