"""Options shared by several commands, so every command spells them the same way."""
from __future__ import annotations

import click

from stylegan.core.device import DEVICE_CHOICES

device_option = click.option(
    "--device", default="auto", show_default=True, metavar="|".join(DEVICE_CHOICES),
    help="Where to run: auto picks CUDA, then MPS, then CPU.")


def projection_options(fn):
    """The projector's flags, shared by `stylegan project` and `stylegan translate`: --steps, --space, --seed,
    --class and --vgg, passed on as `steps`, `space`, `seed`, `class_idx` and `vgg`."""
    from stylegan.generate.project import SPACES
    for option in reversed([
        click.option("--steps", type=int, default=1000, show_default=True, help="Optimisation steps per photo."),
        click.option("--space", type=click.Choice(SPACES), default="w", show_default=True,
                     help="w: one latent for every layer (editable); w+: one per layer (closer, less editable)."),
        click.option("--seed", type=int, default=303, show_default=True,
                     help="Seed of the initial noise maps and jitter."),
        click.option("--class", "class_idx", type=int, metavar="N", help="Class of a conditional network."),
        click.option("--vgg", metavar="FILE",
                     help="VGG16 weights in torchvision's layout (vgg16-397923af.pth or our vgg16.safetensors): use "
                          "LPIPS on VGG16. Default: a Laplacian-pyramid L1 loss that needs no download."),
    ]):
        fn = option(fn)
    return fn


def as_command_line(ctx: click.Context, leave_out: tuple[str, ...] = ()) -> list[str]:
    """The command `ctx` parsed, rebuilt from its values (`metrics --network G.pkl ...`): what a relaunch under
    torchrun runs again, the same whether the command came from a shell or from `main([...])` in Python."""
    args = [ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if not isinstance(param, click.Option) or param.name in leave_out or value is None or value is False:
            continue
        args += [param.opts[0]] if param.is_flag else [param.opts[0], str(value)]
    return args
