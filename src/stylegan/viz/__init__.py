"""The web visualizer behind `stylegan serve`: a render worker, an HTTP server and a static page.

    from stylegan.viz import ServeConfig, create_app, serve
    serve(ServeConfig(networks=["ffhq.pkl"], port=7860))          # what `stylegan serve --network ffhq.pkl` runs

    RenderParams.from_json(dict) -> RenderParams     one request, every field checked (ParamError names the field)
    Renderer(AllowedFiles(...)).render(params) -> Rendered (PNG bytes, size, ms)   pure, apart from its caches
    RenderWorker().submit(fn, client, seq) -> Future                one thread, newer requests drop stale ones
    create_app(ServeConfig) -> FastAPI app                          needs the extra: pip install 'stylegan[viz]'

The renderer and the worker need only torch; FastAPI and uvicorn are imported by create_app and serve alone.
See docs/viz.md for the page, the HTTP API and running it over an SSH tunnel.
"""
from __future__ import annotations

from stylegan.viz.params import ParamError, RenderParams
from stylegan.viz.renderer import Rendered, Renderer
from stylegan.viz.allowed_files import AllowedFiles
from stylegan.viz.worker import Busy, RenderWorker, Superseded

__all__ = ["AllowedFiles", "Busy", "ParamError", "RenderParams", "RenderWorker", "Rendered", "Renderer",
           "ServeConfig", "Superseded", "create_app", "serve"]

_SERVER = ("ServeConfig", "create_app", "serve")


def __getattr__(name: str):
    if name in _SERVER:
        from stylegan.core.errors import StyleGANError
        try:
            from stylegan.viz import server
        except ImportError as exc:
            raise StyleGANError(str(exc)) from None
        return getattr(server, name)
    raise AttributeError(f"module 'stylegan.viz' has no attribute '{name}'")
