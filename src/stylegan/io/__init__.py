"""Reading and writing networks. Our format is one .safetensors file with its configs in the metadata.

    save_network(module, path)                                 one G or D
    save_networks({'G': G, 'D': D, 'G_ema': G_ema}, path, extra_metadata=None)   a training snapshot
    load_network(path, what='g_ema'|'g'|'d', device='cpu')     one rebuilt module, eval mode, no grad
    load_networks(path, device='cpu')                          every module in the file, by key
    read_network_file(path) -> (configs by key, metadata)      without loading tensors
    describe_network_file(path) / format_description(info)    what `stylegan info` prints

load_network (network_files.py) picks a reader by looking at the file's first bytes; other formats (NVIDIA
pickles) register a reader in LOADERS. A path may also be a URL, downloaded once into the cache (fetch.py).
Nothing here runs code from a file: NVIDIA pickles go through a restricted unpickler (nvidia_pickle.py).
"""
from stylegan.io.network_files import (
    LOADERS, Loader, describe_network_file, format_description, load_network, load_networks)
from stylegan.io.safetensors_format import FORMAT_VERSION, read_network_file, save_network, save_networks

__all__ = [
    "FORMAT_VERSION", "LOADERS", "Loader", "save_network", "save_networks", "load_network", "load_networks",
    "read_network_file", "describe_network_file", "format_description",
]
