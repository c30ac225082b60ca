"""The image grids written during training (reals.png, fakes*.png)."""
from __future__ import annotations

import numpy as np
import PIL.Image
import torch

from stylegan.training.images import save_image_grid


def test_grid_places_images_row_by_row_and_maps_the_range(tmp_path):
    # Six flat images in [-1, 1], each a different level, tiled 3 wide by 2 high.
    levels = torch.linspace(-1, 1, 6)
    images = levels.view(6, 1, 1, 1).expand(6, 3, 4, 5)                     # [N, C, H, W]
    save_image_grid(images, tmp_path / "g.png", drange=(-1, 1), grid=(3, 2))
    grid = np.asarray(PIL.Image.open(tmp_path / "g.png"))
    assert grid.shape == (8, 15, 3)
    expected = np.rint((levels.numpy() + 1) * 127.5).astype(np.uint8)
    for i in range(6):
        row, col = divmod(i, 3)
        assert (grid[row * 4:(row + 1) * 4, col * 5:(col + 1) * 5] == expected[i]).all()


def test_grey_images_give_a_grey_png(tmp_path):
    images = torch.rand(4, 1, 4, 4)
    save_image_grid(images, tmp_path / "g.png", drange=(0, 1), grid=(2, 2))
    picture = PIL.Image.open(tmp_path / "g.png")
    assert picture.mode == "L" and picture.size == (8, 8)
    assert np.array_equal(np.asarray(picture)[4:, :4], np.rint(images[2, 0].numpy() * 255).astype(np.uint8))
