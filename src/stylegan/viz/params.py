"""What one render request asks for, and the checks every field passes before any work starts.

A request is JSON; `RenderParams.from_json` turns it into a frozen dataclass or raises ParamError naming the field,
what was wrong and what is allowed. Checks that need the network (layer names, class, cutoff, mixing layers,
channel index) happen in the renderer, which raises the same ParamError. No FastAPI here: the renderer and the
benchmark use these without the web server.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

MAX_SEED = 2 ** 32 - 1              # np.random.RandomState's range, as `stylegan generate --seeds`
PSI_RANGE = (-2.0, 2.0)             # truncation psi; NVIDIA's visualizer offers -1..2
TRANSLATE_LIMIT = 10.0              # StyleGAN3 input shift, image widths (the picture repeats long before)
ROTATE_LIMIT = 360.0                # degrees; the page wraps its animation into this range
STRENGTH_LIMIT = 20.0               # latent-direction strength, standard deviations of W
MAX_STRENGTHS = 32                  # sliders the page may send for one directions file
MIN_IMAGE_SIZE = 16                 # smallest requested image edge, px
DEFAULT_MAX_IMAGE_SIZE = 2048       # largest requested image edge, px (serve --max-size)
MAX_SEQ = 2 ** 53                   # request sequence numbers stay exact in JavaScript
VIEWS = ("output", "layer", "fft")
NOISE_MODES = ("const", "random", "none")
_CLIENT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NAME_LIMIT = 1024                  # characters in a network, directions or layer name


class ParamError(ValueError):
    """A request field has a value that is not allowed; `field` names it (JSON name), str() says what to do.
    `status` is the HTTP status the server answers with (422 unless the thing asked for is missing or refused)."""

    def __init__(self, field: str, message: str, status: int = 422):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.status = status


@dataclass(frozen=True)
class RenderParams:
    """One picture: which network, which latent, how to render it, and which view of it to send back."""
    network: str                                # a --network as given to serve, or a path inside --models-dir
    seed: int = 0                               # z = RandomState(seed).randn(z_dim), as `stylegan generate`
    seed_frac: float = 0.0                      # 0..1: blend w linearly towards seed + 1 (the seed animation)
    psi: float = 1.0                            # truncation psi (1 = none)
    cutoff: int | None = None                   # truncate only the first N ws (None = all)
    class_idx: int | None = None                # JSON "class": class of a conditional network
    noise_mode: str = "const"                   # StyleGAN2 noise inputs: const | random | none
    translate: tuple[float, float] = (0.0, 0.0)  # StyleGAN3 input shift, image widths
    rotate: float = 0.0                         # StyleGAN3 input rotation, degrees counter-clockwise
    mix_seed: int | None = None                 # style mixing: take some layers' w from this seed
    mix_layers: tuple[int, int] | None = None   # first and last (inclusive) layer taken from mix_seed
    directions: str | None = None               # a directions file (from `stylegan directions`)
    strengths: tuple[float, ...] = ()           # per component, in standard deviations; component i = strengths[i]
    view: str = "output"                        # output | layer | fft
    layer: str | None = None                    # synthesis layer for view 'layer' (and 'fft' of a layer)
    channel: int | None = None                  # one channel of the layer; None = a grid of every channel
    size: int | None = None                     # longest edge of the returned image, px (None = natural size)
    client: str | None = None                   # the page's id; with seq, newer requests supersede older ones
    seq: int | None = None                      # this client's request number, increasing

    # JSON name -> field name where they differ ("class" is a Python keyword).
    JSON_NAMES = {"class": "class_idx"}

    @classmethod
    def from_json(cls, body: Any, max_size: int = DEFAULT_MAX_IMAGE_SIZE) -> "RenderParams":
        """Check a decoded JSON object field by field; the first bad field raises ParamError."""
        if not isinstance(body, dict):
            raise ParamError("body", "expected a JSON object such as {\"network\": \"ffhq.pkl\", \"seed\": 42}", 400)
        allowed = {f.name for f in fields(cls)} - set(cls.JSON_NAMES.values()) | set(cls.JSON_NAMES)
        for key in body:
            if key not in allowed:
                raise ParamError(str(key)[:64], f"unknown field; allowed fields are {', '.join(sorted(allowed))}")
        get = body.get
        p = dict(
            network=_name(get("network"), "network", required=True),
            seed=_int(get("seed", 0), "seed", 0, MAX_SEED),
            seed_frac=_float(get("seed_frac", 0.0), "seed_frac", 0.0, 1.0),
            psi=_float(get("psi", 1.0), "psi", *PSI_RANGE),
            cutoff=_optional(_int, get("cutoff"), "cutoff", 0, 1 << 16),
            class_idx=_optional(_int, get("class"), "class", 0, 1 << 24),
            noise_mode=_choice(get("noise_mode", "const"), "noise_mode", NOISE_MODES),
            translate=_pair(get("translate", [0, 0]), "translate", _float, -TRANSLATE_LIMIT, TRANSLATE_LIMIT),
            rotate=_float(get("rotate", 0.0), "rotate", -ROTATE_LIMIT, ROTATE_LIMIT),
            mix_seed=_optional(_int, get("mix_seed"), "mix_seed", 0, MAX_SEED),
            mix_layers=_optional(_pair, get("mix_layers"), "mix_layers", _int, 0, 1 << 16),
            directions=_name(get("directions"), "directions"),
            strengths=_strengths(get("strengths", [])),
            view=_choice(get("view", "output"), "view", VIEWS),
            layer=_name(get("layer"), "layer"),
            channel=_optional(_int, get("channel"), "channel", 0, 1 << 20),
            size=_optional(_int, get("size"), "size", MIN_IMAGE_SIZE, max_size),
            client=_client(get("client")),
            seq=_optional(_int, get("seq"), "seq", 0, MAX_SEQ),
        )
        if p["seed_frac"] == 1.0:
            raise ParamError("seed_frac", "1 is not allowed; use seed + 1 with seed_frac 0 (allowed: 0 <= x < 1)")
        if p["seed_frac"] > 0 and p["seed"] == MAX_SEED:
            raise ParamError("seed_frac", f"seed {MAX_SEED} is the last seed; there is no next seed to blend towards")
        if p["mix_layers"] is not None and p["mix_layers"][0] > p["mix_layers"][1]:
            raise ParamError("mix_layers", f"{list(p['mix_layers'])} runs backwards; give [first, last] with "
                                           "first <= last")
        if (p["mix_seed"] is None) != (p["mix_layers"] is None):
            raise ParamError("mix_seed" if p["mix_seed"] is None else "mix_layers",
                             "style mixing needs both mix_seed and mix_layers ([first, last]); give both or neither")
        if p["strengths"] and p["directions"] is None:
            raise ParamError("strengths", "strengths need a directions file; set \"directions\" or leave strengths out")
        if p["view"] == "layer" and p["layer"] is None:
            raise ParamError("layer", "view 'layer' needs a layer name; GET the network's layers from /api/network")
        if p["view"] == "output" and p["layer"] is not None:
            raise ParamError("layer", "view 'output' shows the image; use view 'layer' or 'fft' to look at a layer")
        if p["channel"] is not None and p["layer"] is None:
            raise ParamError("channel", "a channel belongs to a layer; set \"layer\" too")
        if (p["client"] is None) != (p["seq"] is None):
            raise ParamError("seq" if p["seq"] is None else "client",
                             "client and seq go together: a client id and its increasing request number")
        return cls(**p)

    def to_json(self) -> dict:
        """The JSON form from_json reads (None and default fields included, tuples as lists)."""
        out = {}
        for key, value in asdict(self).items():
            key = {v: k for k, v in self.JSON_NAMES.items()}.get(key, key)
            out[key] = list(value) if isinstance(value, tuple) else value
        return out

    @property
    def plain_seed(self) -> bool:
        """True when the latent is exactly one seed's, as `stylegan generate --seeds` makes it."""
        return self.seed_frac == 0 and self.mix_seed is None and not any(self.strengths)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(value: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not (isinstance(value, int) and not isinstance(value, bool)):
        raise ParamError(field, f"{_show(value)} is not a whole number; allowed: {lo} to {hi}")
    if not lo <= value <= hi:
        raise ParamError(field, f"{value} is out of range; allowed: {lo} to {hi}")
    return value


def _float(value: Any, field: str, lo: float, hi: float) -> float:
    if not _is_number(value) or not math.isfinite(value):
        raise ParamError(field, f"{_show(value)} is not a number; allowed: {lo:g} to {hi:g}")
    if not lo <= value <= hi:
        raise ParamError(field, f"{value:g} is out of range; allowed: {lo:g} to {hi:g}")
    return float(value)


def _optional(check, value: Any, field: str, *args):
    return None if value is None else check(value, field, *args)


def _pair(value: Any, field: str, check, lo, hi) -> tuple:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ParamError(field, f"{_show(value)} is not a list of two numbers, such as [0.1, -0.2]")
    return (check(value[0], f"{field}[0]", lo, hi), check(value[1], f"{field}[1]", lo, hi))


def _choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ParamError(field, f"{_show(value)} is not allowed; choose one of {', '.join(choices)}")
    return value


def _name(value: Any, field: str, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > _NAME_LIMIT or "\x00" in value:
        what = "is missing" if value is None else f"{_show(value)} is not a usable name"
        raise ParamError(field, f"{what}; give a name from GET /api/networks (a string of 1 to {_NAME_LIMIT} "
                                "characters)")
    return value


def _strengths(value: Any) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) > MAX_STRENGTHS:
        raise ParamError("strengths", f"expected a list of at most {MAX_STRENGTHS} numbers (one per component)")
    return tuple(_float(v, f"strengths[{i}]", -STRENGTH_LIMIT, STRENGTH_LIMIT) for i, v in enumerate(value))


def _client(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _CLIENT_RE.match(value):
        raise ParamError("client", f"{_show(value)} is not allowed; use 1 to 64 letters, digits, '-' or '_'")
    return value


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:                      # a list nested a few hundred deep, still under json's own limit
        return "a deeply nested value"
    return text if len(text) <= 40 else text[:37] + "..."
