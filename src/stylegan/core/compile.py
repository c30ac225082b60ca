"""`--compile`: torch.compile with a fallback, the one wrapper that `train`, `generate` and `metrics` share.

    fast = compiled(D)                          # a callable; D itself, its state_dict and its names are unchanged
    logits = fast(img, c)                       # compiled at the first call; eager if compiling fails
    with compiled_forward(G.mapping, G.synthesis, cuda_graphs=True):
        images = render(G, seeds)               # every G.mapping(...) / G.synthesis(...) in the block is compiled

Why a wrapper. torch.compile() itself rarely fails: dynamo and the backend run at the first call (and again when
new shapes or arguments need a new graph), and that is where a missing C++ compiler, an unsupported Python or an
op the backend cannot lower shows up. `Compiled` catches that, runs the same call eagerly, warns once per
process (one line that names the error) and from then on every compiled callable of the process runs eagerly.
An error that eager raises too is a real error and is raised as it would be without --compile, with no warning.

What stays the same:
  - Module names: the compiled callable is kept beside the module, never registered inside one, so state dicts
    and saved files carry no '_orig_mod.' prefix, and a file written by a compiled run loads in an eager one.
  - Random numbers: inductor's own RNG (a fused Philox stream) would draw other numbers than eager for the same
    seed; `fallback_random` makes compiled code call torch's generators, so the seeded noise of StyleGAN2's
    synthesis, and with it a training run and its resume, is the eager one to float rounding.
Not compiled here (the caller keeps those calls eager): double backward. AOTAutograd, under torch.compile, does
not differentiate a compiled graph twice, which R1 (grad of D's gradient) and the path length penalty need.

CUDA graphs (`cuda_graphs=True`) are used only when the call's tensors are on CUDA; callers ask for them where the
shapes are static (inference at a fixed batch). Each call's outputs are cloned, because a replay overwrites
the memory of the previous one's outputs.
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from typing import Callable, Iterator

import torch

_failure: str | None = None         # why compiling failed in this process; once set, everything runs eagerly
BACKEND = "inductor"                # torch.compile's backend (the tests use 'aot_eager': no C++ compiler runs)


def compile_failure() -> str | None:
    """The error that turned --compile off in this process (None while compiling works or was never tried)."""
    return _failure


def _fall_back(exc: BaseException) -> None:
    global _failure
    if _failure is None:
        text = str(exc).strip().splitlines()
        _failure = f"{type(exc).__name__}: {text[0][:200] if text else ''}".rstrip(": ")
        warnings.warn(f"--compile: torch.compile failed ({_failure}); running eagerly", RuntimeWarning, stacklevel=3)


def _on_cuda(args, kwargs) -> bool:
    leaves = list(args) + list(kwargs.values())
    return any(isinstance(t, torch.Tensor) and t.device.type == "cuda" for t in leaves)


class Compiled:
    """`fn` (a module or function) run through torch.compile, built at the first call; see the module docstring."""

    def __init__(self,
                 fn: Callable,                      # what to compile: a module, a bound forward, any function
                 cuda_graphs: bool = False,         # CUDA graphs when the inputs are on CUDA (static shapes only)
                 backend: str | None = None,        # torch.compile backend; None = BACKEND
                 ):
        self.eager = fn
        self.cuda_graphs = cuda_graphs
        self.backend = backend or BACKEND
        self._compiled: Callable | None = None
        self._graphs = False                        # whether CUDA graphs are on (decided at the first call)

    def _build(self, args, kwargs) -> Callable:
        self._graphs = self.cuda_graphs and _on_cuda(args, kwargs)
        options = None
        if self.backend == "inductor":
            options = {"fallback_random": True}
            if self._graphs:
                options["triton.cudagraphs"] = True   # what mode="reduce-overhead" sets; mode and options exclude
        # dynamic=False: a new batch size gets its own graph instead of symbolic shapes.
        return torch.compile(self.eager, backend=self.backend, dynamic=False, options=options)

    def __call__(self, *args, **kwargs):
        if _failure is not None:
            return self.eager(*args, **kwargs)
        try:
            if self._compiled is None:
                self._compiled = self._build(args, kwargs)
            if self._graphs:
                torch.compiler.cudagraph_mark_step_begin()
                return torch.utils._pytree.tree_map_only(torch.Tensor, torch.clone, self._compiled(*args, **kwargs))
            return self._compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - whatever compiling raised, eager decides whether it is real
            out = self.eager(*args, **kwargs)
            _fall_back(exc)
            return out

    def __deepcopy__(self, memo: dict) -> "Compiled":
        # A copied module gets its own compiled forward, bound to the copy (not to the original's weights).
        return Compiled(copy.deepcopy(self.eager, memo), self.cuda_graphs, self.backend)


def compiled(fn: Callable, *, enabled: bool = True, cuda_graphs: bool = False, backend: str | None = None) -> Callable:
    """`fn` compiled with the fallback of this module, or `fn` itself when not `enabled` (--compile not given)."""
    return Compiled(fn, cuda_graphs=cuda_graphs, backend=backend) if enabled else fn


@contextlib.contextmanager
def compiled_forward(*modules: torch.nn.Module, enabled: bool = True, cuda_graphs: bool = False,
                     backend: str | None = None) -> Iterator[None]:
    """Within the block, calling any of `modules` runs its forward compiled (hooks stay eager); the modules, their
    parameters and their names are untouched, and afterwards they are exactly as before."""
    patched = []
    try:
        for module in modules if enabled else ():
            if "forward" not in vars(module):
                module.forward = Compiled(module.forward, cuda_graphs=cuda_graphs, backend=backend)
                patched.append(module)
        yield
    finally:
        for module in patched:
            del module.forward

