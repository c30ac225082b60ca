"""Generation: images, style mixing, interpolation videos, projection of photos, and latent edit directions.

Pure rendering (tensors in, tensors out; what the visualizer calls):
    seeds_to_z(seeds, z_dim) -> z [N, z_dim]                       NVIDIA's z for each seed
    seeds_to_ws(G, seeds, psi=1, cutoff=None, class_idx=None) -> ws [N, num_ws, w_dim]
    truncate(G, ws, psi, cutoff) -> ws                             the truncation trick, for latents from files
    style_mix(ws, other_ws, layers) -> ws                          layers taken from other_ws
    apply_direction(ws, direction, strength, layers=None) -> ws    ws + strength * direction in those layers
    synthesize(G, ws, noise_mode='const', translate=(0, 0), rotate=0, batch=8, noise_seeds=None, noise=None)
        -> uint8 [N, H, W, C]
    render(G, seeds=None, ws=None, options=RenderOptions(...), batch=8, noise=None) -> uint8 [N, H, W, C]
    make_transform(translate, angle) / input_transform(translate, angle) -> 3x3 numpy matrix
    image_grid(images, cols, rows=None) -> uint8 [rows*H, cols*W, C]
    mix_figure(G, row_seeds, col_seeds, styles=None, options) -> uint8 image
    edit_strips(G, ws, directions, index, strengths, layers=None, options) -> uint8 [N, S, H, W, C]
    compute_directions(G, num_samples, components, seed, class_idx, layers) -> Directions
    project(G, target_uint8_hwc, ProjectOptions(...), loss=None) -> ProjectionResult
    video_frames(G, seeds, VideoOptions(...)) -> (num_frames, iterator of uint8 frames)
    generate_command(network, seeds, options, outdir, grid) -> the equivalent `stylegan generate` line
    blend_networks(G_a, G_b, BlendOptions(swap_res=16, ...)) -> G       layer swapping (Pinkney & Adler 2020)
    translate_images(G_a, G_b, targets, outdir, ProjectOptions(...), blend=None) -> [(ProjectionResult, paths)]

What the CLI commands call (they also write files):
    load_generator(network, device)      every --network goes through stylegan.io.load_network
    generate_images, write_mix, make_video, run_projection, save_directions, write_edits, write_blend,
    run_translation
See docs/generate.md.
"""
from stylegan.generate.blend import BlendOptions, blend_networks, write_blend
from stylegan.generate.directions import (
    Directions, apply_direction, compute_directions, edit_strips, load_directions, parse_direction, parse_strengths,
    save_directions, write_edits)
from stylegan.generate.files import load_target, load_ws, png_bytes, save_png, save_ws
from stylegan.generate.images import generate_command, generate_images, mix_figure, write_mix
from stylegan.generate.network import load_generator
from stylegan.generate.project import (
    LaplacianPyramidL1, ProjectionLoss, ProjectionResult, ProjectOptions, VGGPerceptual, load_vgg_loss, project, psnr,
    run_projection)
from stylegan.generate.render import (
    NOISE_MODES, RenderOptions, class_labels, image_grid, input_transform, is_stylegan3, make_transform, parse_grid,
    parse_vec2, render, require_one_source, seeds_to_ws, seeds_to_z, style_mix, synthesize, to_uint8, transformed,
    truncate)
from stylegan.generate.translate import run_translation, translate_images
from stylegan.generate.video import (
    VideoOptions, interpolate, make_video, mp4_writer, parse_rotate_path, parse_translate_path, video_frames,
    write_video)

__all__ = [
    "BlendOptions", "blend_networks", "write_blend", "run_translation", "translate_images",
    "Directions", "apply_direction", "compute_directions", "edit_strips", "load_directions", "parse_direction",
    "parse_strengths", "save_directions", "write_edits",
    "load_target", "load_ws", "png_bytes", "save_png", "save_ws",
    "generate_command", "generate_images", "mix_figure", "write_mix",
    "load_generator",
    "LaplacianPyramidL1", "ProjectionLoss", "ProjectionResult", "ProjectOptions", "VGGPerceptual", "load_vgg_loss",
    "project", "psnr", "run_projection",
    "NOISE_MODES", "RenderOptions", "class_labels", "image_grid", "input_transform", "is_stylegan3",
    "make_transform", "parse_grid", "parse_vec2", "render", "require_one_source", "seeds_to_ws", "seeds_to_z",
    "style_mix", "synthesize",
    "to_uint8", "transformed", "truncate",
    "VideoOptions", "interpolate", "make_video", "mp4_writer", "parse_rotate_path", "parse_translate_path",
    "video_frames", "write_video",
]
