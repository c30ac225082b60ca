"""Feature networks and their weight files: layouts, the TF resize, LPIPS, and loading each format safely.

Every weights file here is written by the test itself with random values; nothing is downloaded.
"""
import io
import math
import os
import pickle
import urllib.error
import urllib.response
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stylegan.core.errors import StyleGANError
from stylegan.io.limits import FileLimitError
from stylegan.io import fetch
from stylegan.metrics import weights
from stylegan.metrics.inception import InceptionV3, tf_resize_bilinear
from stylegan.metrics.vgg import CONV_INDICES, VGG16


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("STYLEGAN_OFFLINE", "1")
    weights._loaded.clear()


def _randomize(model: nn.Module, seed: int = 0) -> dict:
    """Well-conditioned random weights (He-scaled convolutions, positive variances) in the model's layout."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            state[k] = v
        elif k.endswith("var"):  # torch's running_var and NVIDIA's var
            state[k] = torch.rand(v.shape, generator=g) + 0.5
        elif v.ndim >= 2:
            state[k] = torch.randn(v.shape, generator=g) * math.sqrt(2 / v[0].numel())
        else:
            state[k] = torch.randn(v.shape, generator=g) * 0.1
    return state


# --------------------------------------------------------------------------------------------------------------
# Inception

def test_inception_has_the_pytorch_fid_layout():
    state = weights.empty_model(InceptionV3).state_dict()
    convs = [k for k in state if k.endswith(".conv.weight")]
    assert len(convs) == 94  # Inception-v3 without the auxiliary head
    assert tuple(state["fc.weight"].shape) == (1008, 2048)
    assert tuple(state["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape) == (384, 384, 3, 1)
    assert tuple(state["Mixed_6e.branch7x7dbl_5.conv.weight"].shape) == (192, 192, 1, 7)
    assert tuple(state["Conv2d_1a_3x3.bn.running_var"].shape) == (32,)


def _tf_legacy_resize(img: np.ndarray, size: int) -> np.ndarray:
    # TF 1.x resize_bilinear, align_corners=False: output i reads input i * in / out, clamped at the end.
    c, h, w = img.shape
    out = np.zeros((c, size, size))
    for oy in range(size):
        sy = oy * h / size
        y0 = int(np.floor(sy))
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for ox in range(size):
            sx = ox * w / size
            x0 = int(np.floor(sx))
            x1, fx = min(x0 + 1, w - 1), sx - x0
            top = img[:, y0, x0] * (1 - fx) + img[:, y0, x1] * fx
            bottom = img[:, y1, x0] * (1 - fx) + img[:, y1, x1] * fx
            out[:, oy, ox] = top * (1 - fy) + bottom * fy
    return out


@pytest.mark.parametrize("h,w,size", [(7, 5, 11), (13, 13, 6), (9, 20, 9)])
def test_tf_resize_matches_the_legacy_definition(h, w, size):
    img = np.random.default_rng(0).uniform(0, 255, size=(3, h, w))
    ours = tf_resize_bilinear(torch.from_numpy(img).float()[None], size=size)[0].numpy()
    np.testing.assert_allclose(ours, _tf_legacy_resize(img, size), atol=1e-3)


def test_tf_resize_is_identity_at_299():
    x = torch.rand(1, 3, 299, 299)
    assert torch.equal(tf_resize_bilinear(x), x)


def test_pytorch_fid_pth_and_our_safetensors_load(tmp_path):
    state = _randomize(weights.empty_model(InceptionV3))
    folder = tmp_path / "feat"
    folder.mkdir()
    torch.save(state, folder / "pt_inception-2015-12-05-6726825d.pth")
    model, ident = weights.load_inception(folder)
    for k, v in model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, state[k]), k
    assert ident.startswith("inception-2015-12-05:")

    out = tmp_path / "ours"
    weights.export_safetensors(model, out / "inception-2015-12-05.safetensors")
    weights._loaded.clear()
    again, ident2 = weights.load_inception(out)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_wrong_file_is_a_clear_error(tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    with pytest.raises(StyleGANError, match="not an Inception-v3"):
        weights.load_inception(tmp_path)


# NVIDIA's detector, restated from its documented structure: TF layer names, conv + batch norm without
# gamma (eps 1e-3), TF's legacy bilinear resize done with affine_grid, inputs scaled by (x - 128) / 128.
class NvConv(nn.Module):
    def __init__(self, cin: int, cout: int, kh: int, kw: int, stride: int = 1, ph: int = 0, pw: int = 0):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin, kh, kw))
        self.beta = nn.Parameter(torch.zeros(cout))
        self.mean = nn.Parameter(torch.zeros(cout))
        self.var = nn.Parameter(torch.ones(cout))
        self.stride = stride
        self.padding = [ph, pw]

    def forward(self, x):
        x = F.conv2d(x, self.weight, None, self.stride, self.padding)
        x = (x - self.mean.view(1, -1, 1, 1)) / torch.sqrt(self.var.view(1, -1, 1, 1) + 1e-3)
        return F.relu(x + self.beta.view(1, -1, 1, 1))


def _seq(**layers):
    return nn.Sequential(OrderedDict(layers))


def _avgpool():
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


class NvA(nn.Module):
    def __init__(self, cin, pool):
        super().__init__()
        self.conv = NvConv(cin, 64, 1, 1)
        self.tower = _seq(conv=NvConv(cin, 48, 1, 1), conv_1=NvConv(48, 64, 5, 5, ph=2, pw=2))
        self.tower_1 = _seq(conv=NvConv(cin, 64, 1, 1), conv_1=NvConv(64, 96, 3, 3, ph=1, pw=1),
                            conv_2=NvConv(96, 96, 3, 3, ph=1, pw=1))
        self.tower_2 = _seq(pool=_avgpool(), conv=NvConv(cin, pool, 1, 1))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class NvB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.conv = NvConv(cin, 384, 3, 3, stride=2)
        self.tower = _seq(conv=NvConv(cin, 64, 1, 1), conv_1=NvConv(64, 96, 3, 3, ph=1, pw=1),
                          conv_2=NvConv(96, 96, 3, 3, stride=2))
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.pool(x)], 1)


class NvC(nn.Module):
    def __init__(self, cin, mid):
        super().__init__()
        self.conv = NvConv(cin, 192, 1, 1)
        self.tower = _seq(conv=NvConv(cin, mid, 1, 1), conv_1=NvConv(mid, mid, 1, 7, pw=3),
                          conv_2=NvConv(mid, 192, 7, 1, ph=3))
        self.tower_1 = _seq(conv=NvConv(cin, mid, 1, 1), conv_1=NvConv(mid, mid, 7, 1, ph=3),
                            conv_2=NvConv(mid, mid, 1, 7, pw=3), conv_3=NvConv(mid, mid, 7, 1, ph=3),
                            conv_4=NvConv(mid, 192, 1, 7, pw=3))
        self.tower_2 = _seq(pool=_avgpool(), conv=NvConv(cin, 192, 1, 1))

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class NvD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.tower = _seq(conv=NvConv(cin, 192, 1, 1), conv_1=NvConv(192, 320, 3, 3, stride=2))
        self.tower_1 = _seq(conv=NvConv(cin, 192, 1, 1), conv_1=NvConv(192, 192, 1, 7, pw=3),
                            conv_2=NvConv(192, 192, 7, 1, ph=3), conv_3=NvConv(192, 192, 3, 3, stride=2))
        self.pool = nn.MaxPool2d(3, stride=2)

    def forward(self, x):
        return torch.cat([self.tower(x), self.tower_1(x), self.pool(x)], 1)


class NvE(nn.Module):
    def __init__(self, cin, use_max):
        super().__init__()
        self.conv = NvConv(cin, 320, 1, 1)
        self.tower_conv = NvConv(cin, 384, 1, 1)
        self.tower_mixed_conv = NvConv(384, 384, 1, 3, pw=1)
        self.tower_mixed_conv_1 = NvConv(384, 384, 3, 1, ph=1)
        self.tower_1_conv = NvConv(cin, 448, 1, 1)
        self.tower_1_conv_1 = NvConv(448, 384, 3, 3, ph=1, pw=1)
        self.tower_1_mixed_conv = NvConv(384, 384, 1, 3, pw=1)
        self.tower_1_mixed_conv_1 = NvConv(384, 384, 3, 1, ph=1)
        self.tower_2_pool = nn.MaxPool2d(3, stride=1, padding=1) if use_max else _avgpool()
        self.tower_2_conv = NvConv(cin, 192, 1, 1)

    def forward(self, x):
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
                          self.tower_2_conv(self.tower_2_pool(x))], 1)


class NvInception(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = _seq(
            conv=NvConv(3, 32, 3, 3, stride=2), conv_1=NvConv(32, 32, 3, 3), conv_2=NvConv(32, 64, 3, 3, ph=1, pw=1),
            pool0=nn.MaxPool2d(3, stride=2), conv_3=NvConv(64, 80, 1, 1), conv_4=NvConv(80, 192, 3, 3),
            pool1=nn.MaxPool2d(3, stride=2), mixed=NvA(192, 32), mixed_1=NvA(256, 64), mixed_2=NvA(288, 64),
            mixed_3=NvB(288), mixed_4=NvC(768, 128), mixed_5=NvC(768, 160), mixed_6=NvC(768, 160),
            mixed_7=NvC(768, 192), mixed_8=NvD(768), mixed_9=NvE(1280, False), mixed_10=NvE(2048, True),
            pool2=nn.AvgPool2d(8))
        self.output = nn.Linear(2048, 1008)

    def forward(self, img):
        n, c, h, w = img.shape
        x = img.to(torch.float32)
        theta = torch.eye(2, 3)
        theta[0, 2] += 1 / w - 1 / 299
        theta[1, 2] += 1 / h - 1 / 299
        grid = F.affine_grid(theta.unsqueeze(0).repeat(n, 1, 1), [n, c, 299, 299], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        features = self.layers((x - 128) / 128).reshape(-1, 2048)
        return features


class _JitWrapped:
    """Pickles as `torch.jit.load(io.BytesIO(<TorchScript zip>))`: a pickle stream embedding the archive."""

    def __init__(self, archive: bytes):
        self.archive = archive

    def __reduce__(self):
        return (torch.jit.load, (io.BytesIO(self.archive),))


class _Trap:
    def __reduce__(self):
        return (os.system, ("echo executed > " + str(self.marker),))


@pytest.mark.slow
def test_nvidia_pickle_is_read_without_running_it_and_gives_the_same_features(tmp_path):
    reference = NvInception().eval().requires_grad_(False)
    reference.load_state_dict(_randomize(reference, seed=3))
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(reference), buf)
    trap = _Trap()
    trap.marker = tmp_path / "executed"
    (tmp_path / "inception-2015-12-05.pkl").write_bytes(pickle.dumps([trap, _JitWrapped(buf.getvalue())]))

    model, _ = weights.load_inception(tmp_path)
    assert not trap.marker.exists()  # nothing in the file ran
    img = torch.randint(0, 256, (1, 3, 40, 56), dtype=torch.uint8)
    with torch.no_grad():
        expected = reference(img)
        ours = model(img)
        logits = model.logits(ours)
    assert ours.shape == (1, 2048)
    assert torch.allclose(ours, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    assert torch.allclose(logits, reference.output(expected), rtol=1e-4, atol=1e-3)


def test_pickle_that_only_runs_code_is_refused(tmp_path):
    trap = _Trap()
    trap.marker = tmp_path / "executed"
    (tmp_path / "inception-2015-12-05.pkl").write_bytes(pickle.dumps({"G": trap}))
    with pytest.raises(StyleGANError, match="not NVIDIA's Inception detector"):
        weights.load_inception(tmp_path)
    assert not trap.marker.exists()


# --------------------------------------------------------------------------------------------------------------
# VGG16 and LPIPS

def test_vgg16_has_torchvision_layout():
    state = weights.empty_model(VGG16).state_dict()
    body = {k for k in state if not k.startswith("lpips.")}
    expected = {f"features.{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias")}
    expected |= {f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")}
    assert body == expected
    assert tuple(state["classifier.0.weight"].shape) == (4096, 25088)
    assert tuple(state["features.28.weight"].shape) == (512, 512, 3, 3)


def _write_vgg_files(folder, seed=0, fc=False):
    """torchvision-layout VGG16 (convolutions; fc6-fc8 too when `fc`) and lpips-layout heads, random."""
    state = _randomize(weights.empty_model(lambda: VGG16(fc=fc)), seed)
    state = {k: v for k, v in state.items() if k.startswith("features.") or (fc and k.startswith("classifier."))}
    torch.save(state, folder / "vgg16-397923af.pth")
    g = torch.Generator().manual_seed(seed + 1)
    heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
             for k, c in enumerate((64, 128, 256, 512, 512))}
    torch.save(heads, folder / "vgg.pth")
    return state, heads


def test_vgg16_and_lpips_heads_load_and_round_trip(tmp_path):
    state, heads = _write_vgg_files(tmp_path)
    model, _ = weights.load_vgg16(tmp_path, need_lpips=True, need_fc=False)
    assert model.has_lpips and not model.has_fc
    assert torch.equal(model.features[0].weight, state["features.0.weight"])
    assert torch.equal(model.lpips.lin3, heads["lin3.model.1.weight"].flatten())
    out = tmp_path / "ours"
    weights.export_safetensors(model, out / "vgg16.safetensors")
    weights._loaded.clear()
    again, _ = weights.load_vgg16(out, need_lpips=True, need_fc=False)
    assert torch.equal(again.lpips.lin4, model.lpips.lin4)
    assert torch.equal(again.features[28].weight, model.features[28].weight)
    with pytest.raises(StyleGANError, match="fully connected"):
        weights.load_vgg16(out)  # precision/recall needs fc6/fc7, which this file does not have


def test_lpips_embedding_distance_is_lpips(tmp_path):
    _write_vgg_files(tmp_path)
    model, _ = weights.load_vgg16(tmp_path, need_lpips=True, need_fc=False)
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 16, 16, generator=g) * 255
    b = (a + torch.randn(2, 3, 16, 16, generator=g) * 20).clamp(0, 255)
    with torch.no_grad():
        ea, eb = model.lpips_embedding(a), model.lpips_embedding(b)
        direct = model.lpips_distance(a, b)
        # LPIPS by its definition, layer by layer, written out here once more.
        x = torch.cat([a, b]) / 127.5 - 1
        shift, scale = torch.tensor([-0.030, -0.088, -0.188]), torch.tensor([0.458, 0.448, 0.450])
        x = (x - shift.view(1, 3, 1, 1)) / scale.view(1, 3, 1, 1)
        total = torch.zeros(2)
        k = 0
        for i, layer in enumerate(model.features[:30]):
            x = layer(x)
            if i in (3, 8, 15, 22, 29):
                n = x / (x.norm(dim=1, keepdim=True) + 1e-10)
                d = (n[:2] - n[2:]).square() * getattr(model.lpips, f"lin{k}").view(1, -1, 1, 1)
                total += d.sum(1).mean(dim=[1, 2])
                k += 1
    assert torch.allclose((ea - eb).square().sum(1), direct, rtol=1e-4)
    assert torch.allclose(direct, total, rtol=1e-4)
    assert (direct > 0).all()


def test_vgg16_without_heads_refuses_lpips(tmp_path):
    _write_vgg_files(tmp_path)
    (tmp_path / "vgg.pth").unlink()
    model, _ = weights.load_vgg16(tmp_path, need_fc=False)
    assert not model.has_lpips
    with pytest.raises(StyleGANError, match="vgg.pth"):
        weights.load_vgg16(tmp_path, need_lpips=True, need_fc=False)


@pytest.mark.slow
def test_pr_features_of_the_full_network(tmp_path):
    _write_vgg_files(tmp_path, fc=True)
    model, _ = weights.load_vgg16(tmp_path)
    assert model.has_fc
    with torch.no_grad():
        f = model(torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8))
    assert f.shape == (1, 4096) and (f >= 0).all() and (f > 0).any()


# --------------------------------------------------------------------------------------------------------------
# Finding the files; downloads.

def test_offline_missing_weights_name_the_file_and_where_to_get_it(tmp_path):
    with pytest.raises(StyleGANError) as info:
        weights.load_inception(tmp_path / "nowhere")
    message = str(info.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in message
    assert "https://github.com/mseitzer/pytorch-fid/releases" in message
    assert "\n" not in message


def test_failed_download_gives_the_same_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("STYLEGAN_OFFLINE")
    calls = []

    def no_network(url, timeout=None):
        calls.append(url)
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", no_network)
    with pytest.raises(StyleGANError, match="vgg16-397923af.pth"):
        weights.load_vgg16(tmp_path, need_fc=False)
    assert calls == [weights.VGG16_TORCHVISION.url]


def test_download_is_checked_against_its_checksum(tmp_path, monkeypatch):
    monkeypatch.delenv("STYLEGAN_OFFLINE")
    monkeypatch.setattr(fetch.urllib.request, "urlopen",
                        lambda url, timeout=None: urllib.response.addinfourl(io.BytesIO(b"not the weights"), {}, url))
    with pytest.raises(StyleGANError, match="SHA-256"):
        weights.load_inception(tmp_path)
    assert not (fetch.cache_dir() / "features" / "pt_inception-2015-12-05-6726825d.pth").exists()
    assert not list((fetch.cache_dir() / "features").glob(".*tmp*"))


def test_a_tensor_pointing_outside_its_storage_is_an_error_not_a_crash(tmp_path):
    # A crafted stream: a 2-element storage viewed as 1000 elements.
    buf = io.BytesIO()
    torch.save({"layers.conv.weight": torch.zeros(2)}, buf)
    import zipfile
    with zipfile.ZipFile(buf) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    key = next(n for n in files if n.endswith("data.pkl"))
    assert b"K\x02\x85" in files[key]
    files[key] = files[key].replace(b"K\x02\x85", b"M\xe8\x03\x85")  # size (2,) -> (1000,)
    patched = io.BytesIO()
    with zipfile.ZipFile(patched, "w") as zf:
        for n, data in files.items():
            zf.writestr(n, data)
    (tmp_path / "inception-2015-12-05.pkl").write_bytes(pickle.dumps(_JitWrapped(patched.getvalue())))
    with pytest.raises(StyleGANError, match="cannot read the pickle"):
        weights.load_inception(tmp_path)


class _NotAWeight:
    pass


def test_unreadable_weight_files_are_one_line_and_keep_their_error_class(tmp_path):
    # torch refuses a foreign global in a .pth with a many-line explanation; we pass on its first line.
    torch.save({"w": _NotAWeight()}, tmp_path / "foreign.pth")
    with pytest.raises(StyleGANError) as info:
        weights.read_tensors(tmp_path / "foreign.pth")
    assert "foreign.pth" in str(info.value) and "\n" not in str(info.value)
    # Our own reader's refusals keep their class: a caller can tell a forged file from a damaged one.
    forged = b"\x80\x04\x8e" + (2 ** 40).to_bytes(8, "little") + b"."       # BINBYTES8 claiming 1 TB
    (tmp_path / "forged.pkl").write_bytes(forged)
    with pytest.raises(FileLimitError, match="forged.pkl"):
        weights.read_tensors(tmp_path / "forged.pkl")
