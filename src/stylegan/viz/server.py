"""The HTTP server: a FastAPI app that serves the page and a small JSON API, and runs renders on the RenderWorker.

    GET  /                  the page (plain HTML, CSS and JS from stylegan/viz/static; no build step, no CDN)
    GET  /static/<file>     its files
    GET  /api/health        {"status": "ok", ...}
    GET  /api/networks      the networks (and directions files) this server may load, and its limits
    POST /api/network       {"network": NAME} -> the network's shape, layers and fitting directions
    POST /api/render        render parameters -> image/png (409 when superseded by a newer request)
    POST /api/command       render parameters -> the equivalent `stylegan generate` line
    POST /api/export        render parameters -> PNG + latents + JSON written into --export-dir (403 without it)

docs/viz.md documents every field, status and header. Errors are JSON {"error": message, "field": name}.
FastAPI and uvicorn are the optional extra `stylegan[viz]`; this module is imported only by create_app/serve.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

try:
    import fastapi
    import uvicorn
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
except ImportError as _err:                   # pragma: no cover - exercised only without the extra
    raise ImportError(f"the visualizer needs FastAPI and uvicorn ({_err}); "
                      "install them with: pip install 'stylegan[viz]'") from _err

import stylegan
from stylegan.core.errors import UsageError
from stylegan.viz.params import DEFAULT_MAX_IMAGE_SIZE, MAX_STRENGTHS, ParamError, RenderParams
from stylegan.viz.renderer import DEFAULT_CACHE_SIZE, DEFAULT_LOAD_TIMEOUT, Renderer
from stylegan.viz.allowed_files import AllowedFiles
from stylegan.viz.worker import DEFAULT_MAX_PENDING, Busy, RenderWorker, Superseded

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_BODY = 64 * 1024        # bytes in one request body; a render request is a few hundred
DEFAULT_BODY_TIMEOUT = 10.0         # seconds for a request body to arrive once its headers have
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# The page loads nothing from anywhere else; the browser enforces it.
CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
log = logging.getLogger("stylegan.viz")


@dataclass
class ServeConfig:
    """Everything `stylegan serve` takes; see docs/viz.md."""
    networks: list[str] = field(default_factory=list)     # --network: files (or URLs) requests may name
    models_dir: str | None = None                         # --models-dir: any network below it may be named too
    directions: list[str] = field(default_factory=list)   # --directions: latent-direction files
    export_dir: str | None = None                         # --export-dir: the only place the server writes
    host: str = DEFAULT_HOST                              # --host
    port: int = DEFAULT_PORT                              # --port (0 = any free port)
    device: str = "auto"                                  # --device
    max_size: int = DEFAULT_MAX_IMAGE_SIZE                # --max-size: longest edge of a returned image, px
    cache_size: int = DEFAULT_CACHE_SIZE                  # networks kept loaded
    max_body: int = DEFAULT_MAX_BODY                      # bytes per request body
    max_pending: int = DEFAULT_MAX_PENDING                # render jobs waiting at once (more: 429)
    body_timeout: float = DEFAULT_BODY_TIMEOUT            # seconds for a body to arrive (a short one: 400)
    load_timeout: float = DEFAULT_LOAD_TIMEOUT            # --load-timeout: seconds to load a network (more: 503)
    allowed_hosts: list[str] | None = None                # Host headers answered; None = loopback names when
                                                          # bound to loopback, anything otherwise


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


class _Guard:
    """ASGI middleware: refuse request bodies over the limit (413), bodies that do not arrive in time, such as one
    shorter than its Content-Length (400), and Host headers not allowed (400; against DNS rebinding, a web page
    elsewhere reaching this server through the user's browser)."""

    def __init__(self, app, max_body: int, allowed_hosts: list[str] | None, body_timeout: float = DEFAULT_BODY_TIMEOUT):
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.allowed_hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.allowed_hosts is not None and _host_name(headers.get("host", "")) not in self.allowed_hosts:
            return await _send_json(send, 400, {"error": "Host header not allowed: open the page as "
                                                         "http://127.0.0.1:PORT/ or http://localhost:PORT/",
                                                "field": "host"})
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _drain(receive)
            return await _send_json(send, 413, _too_large(self.max_body))
        # Read the whole body up front (bodies here are small), counting, whatever the client declared.
        chunks, size, more = [], 0, True
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
            except asyncio.TimeoutError:
                said = f"its Content-Length says {declared} bytes; " if declared is not None else ""
                return await _send_json(send, 400, {
                    "error": f"request body incomplete: {size} bytes arrived in {self.body_timeout:g} s; {said}"
                             "send the whole body at once", "field": "body"})
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _drain(receive, message)
                return await _send_json(send, 413, _too_large(self.max_body))
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):                             # [::1]:7860
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _too_large(limit: int) -> dict:
    return {"error": f"request body too large: at most {limit} bytes", "field": "body"}


async def _drain(receive, message: dict | None = None) -> None:
    while message is None or message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            return


async def _send_json(send, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _error(code: int, message: str, field: str | None = None, **extra) -> JSONResponse:
    return JSONResponse({"error": message, "field": field, **extra}, status_code=code,
                        headers={"Cache-Control": "no-store"})


def create_app(config: ServeConfig) -> "fastapi.FastAPI":
    """The ASGI app. Loads nothing yet: networks load on first use. Raises UsageError for bad configuration."""
    files = AllowedFiles(config.networks, config.models_dir, config.directions)
    renderer = Renderer(files, device=config.device, cache_size=config.cache_size, max_size=config.max_size,
                        export_dir=config.export_dir, load_timeout=config.load_timeout)
    worker = RenderWorker(max_pending=config.max_pending)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        worker.close()

    # No /docs: FastAPI's generated docs page loads scripts from a CDN. The API is documented in docs/viz.md.
    app = fastapi.FastAPI(title="stylegan serve", version=stylegan.__version__, docs_url=None, redoc_url=None,
                          openapi_url=None, lifespan=lifespan)
    app.state.config = config
    app.state.files = files
    app.state.renderer = renderer
    app.state.worker = worker

    async def json_body(request: fastapi.Request) -> Any:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            # Also a CSRF guard: a cross-site page cannot send application/json without a CORS preflight.
            raise ParamError("content-type", f"{kind or 'none'} is not accepted; send JSON with "
                                             "Content-Type: application/json", 415)
        try:
            return json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParamError("body", f"not valid JSON ({exc})", 400) from None
        except RecursionError:
            raise ParamError("body", "JSON nested too deeply; a request is a flat object of fields", 400) from None

    async def render_params(request: fastapi.Request) -> RenderParams:
        return RenderParams.from_json(await json_body(request), max_size=config.max_size)

    async def on_worker(fn, client: str | None = None, seq: int | None = None):
        return await asyncio.wrap_future(worker.submit(fn, client, seq))

    @app.exception_handler(ParamError)
    async def param_error(_request, exc: ParamError):
        return _error(exc.status, str(exc), exc.field)

    @app.exception_handler(Superseded)
    async def superseded(_request, exc: Superseded):
        return _error(409, str(exc), None, status="superseded", seq=exc.seq, newest=exc.newest)

    @app.exception_handler(Busy)
    async def busy(_request, exc: Busy):
        return _error(429, str(exc), None)

    @app.exception_handler(Exception)
    async def internal(_request, exc: Exception):
        # The message stays in the log: it may hold paths of this machine.
        log.error("request failed", exc_info=exc)
        return _error(500, f"internal error ({type(exc).__name__}); the server's log has the details", None)

    @app.middleware("http")
    async def headers(request: fastapi.Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/health")
    async def health():
        return {"status": "ok", "version": stylegan.__version__, "device": str(renderer.device),
                "pending": worker.pending(), "jobs": dict(worker.stats)}

    @app.get("/api/networks")
    async def networks():
        return {"networks": [{"name": s.name, "origin": s.origin} for s in files.list_networks()],
                "directions": [{"name": s.name, "origin": s.origin} for s in files.list_directions()],
                "export": renderer.export_dir is not None, "device": str(renderer.device),
                "limits": {"max_size": config.max_size, "max_strengths": MAX_STRENGTHS,
                           "max_body": config.max_body}}

    @app.post("/api/network")
    async def network(request: fastapi.Request):
        body = await json_body(request)
        if not isinstance(body, dict) or set(body) - {"network"}:
            extra = sorted(set(body) - {"network"}) if isinstance(body, dict) else None
            raise ParamError(extra[0] if extra else "body", "expected {\"network\": NAME} and nothing else")
        name = RenderParams.from_json({"network": body.get("network")}).network
        return await on_worker(lambda: renderer.info(name))

    @app.post("/api/render")
    async def render(request: fastapi.Request):
        p = await render_params(request)
        r = await on_worker(lambda: renderer.render(p), p.client, p.seq)
        headers = {"X-Render-Ms": f"{r.render_ms:.1f}", "X-Load-Ms": f"{r.load_ms:.1f}",
                   "X-Image-Width": str(r.width), "X-Image-Height": str(r.height)}
        if p.seq is not None:
            headers["X-Seq"] = str(p.seq)
        if r.layer is not None:
            headers["X-Layer"] = r.layer
            headers["X-Layer-Shape"] = ",".join(str(s) for s in r.layer_shape)
        return Response(r.png, media_type="image/png", headers=headers)

    @app.post("/api/command")
    async def command(request: fastapi.Request):
        p = await render_params(request)
        return await on_worker(lambda: renderer.command(p))

    @app.post("/api/export")
    async def export(request: fastapi.Request):
        p = await render_params(request)
        if renderer.export_dir is None:
            raise ParamError("export", "export is off; start stylegan serve with --export-dir DIR to allow it", 403)
        return await on_worker(lambda: renderer.export(p))

    allowed = config.allowed_hosts
    if allowed is None and is_loopback(config.host):
        allowed = list(LOOPBACK_NAMES)
    app.add_middleware(_Guard, max_body=config.max_body, allowed_hosts=allowed, body_timeout=config.body_timeout)
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one (see sock.getsockname())."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}); "
                         "choose another port, or --port 0 for any free one") from None
    return sock


@contextlib.contextmanager
def background_server(config: ServeConfig, host: str = DEFAULT_HOST, timeout: float = 30.0) -> Iterator[str]:
    """Serve create_app(config) on a free port of `host` from a thread (for tests, benchmarks and notebooks);
    yields the base URL, such as http://127.0.0.1:40123, and stops the server on leaving the block."""
    sock = bind(host, 0)
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="stylegan-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the server did not start within {timeout:g} s")
        time.sleep(0.02)
    try:
        port = sock.getsockname()[1]
        yield f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


def serve(config: ServeConfig, app=None, sock: socket.socket | None = None) -> None:
    """Run the server until interrupted (what `stylegan serve` does): `app` (default create_app(config)) on
    `sock` (default: bound to config.host and config.port)."""
    app = app if app is not None else create_app(config)
    sock = sock if sock is not None else bind(config.host, config.port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
