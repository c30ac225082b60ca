"""Which files the server may read: the networks and directions named on the command line, and files inside
--models-dir. Nothing else.

A request names a file by the exact string given to `stylegan serve` (`--network ffhq.pkl`), or by a path relative
to --models-dir (`faces/ffhq.safetensors`). Relative names are checked as text first (no absolute paths, no '..',
no hidden parts, a known suffix) and then on disk: the resolved path, symbolic links followed, must still lie inside
--models-dir. A refusal is ParamError with status 403; a name that is allowed but not there is 404.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stylegan.core.errors import UsageError
from stylegan.io.fetch import local_source
from stylegan.training.state import is_training_state
from stylegan.viz.params import ParamError

NETWORK_SUFFIXES = (".safetensors", ".pkl")
DIRECTIONS_SUFFIXES = (".npz", ".npy")
MAX_LISTED = 1000                   # files listed from --models-dir
MAX_DEPTH = 4                       # folder levels searched below --models-dir
_URL_RE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def is_url(text: str) -> bool:
    return bool(_URL_RE.match(text))


@dataclass(frozen=True)
class Source:
    """One file a request may name."""
    name: str                       # what requests send
    location: str                   # what the loader opens: an absolute path, or the URL as given
    origin: str                     # 'command line' or 'models-dir'


class AllowedFiles:
    """The networks and directions files this server may load, and the name -> location rules for requests."""

    def __init__(self, networks: list[str] = (), models_dir: str | os.PathLike | None = None,
                 directions: list[str] = ()):
        self.models_dir = None
        if models_dir is not None:
            path = Path(models_dir).expanduser()
            if not path.is_dir():
                raise UsageError(f"--models-dir {models_dir}: no such folder")
            self.models_dir = path.resolve()
        self.networks = {name: self._given(name, "--network", NETWORK_SUFFIXES) for name in networks}
        self.directions = {name: self._given(name, "--directions", DIRECTIONS_SUFFIXES) for name in directions}
        if not self.networks and self.models_dir is None:
            raise UsageError("give at least one --network PATH, or --models-dir DIR with networks in it")

    @staticmethod
    def _given(name: str, flag: str, suffixes: tuple[str, ...]) -> Source:
        if is_url(name):
            return Source(name, name, "command line")
        # A network may be the shipped one, by name (`--network emoji`).
        path = local_source(name) if suffixes == NETWORK_SUFFIXES else Path(name).expanduser()
        if not path.is_file():
            raise UsageError(f"{flag} {name}: no such file")
        return Source(name, str(path.resolve()), "command line")

    # --- requests name files ----------------------------------------------------------------------------------

    def network(self, name: str) -> Source:
        return self._resolve(name, self.networks, NETWORK_SUFFIXES, "network")

    def directions_file(self, name: str) -> Source:
        return self._resolve(name, self.directions, DIRECTIONS_SUFFIXES, "directions")

    def _resolve(self, name: str, given: dict[str, Source], suffixes: tuple[str, ...], field: str) -> Source:
        if name in given:
            return given[name]
        if self.models_dir is None:
            offered = ", ".join(given) or "none"
            raise ParamError(field, f"{quote_name(name)} is not offered; this server offers {offered} (start "
                                    "stylegan serve with --models-dir DIR to offer a folder)", 404)
        rel = _relative_name(name, suffixes, field)
        missing = ParamError(field, f"no file {quote_name(name)} inside --models-dir; GET /api/networks lists what is "
                                    "there", 404)
        try:
            path = (self.models_dir / rel).resolve()
            if not path.is_relative_to(self.models_dir):
                raise ParamError(field, f"refused: {quote_name(name)} leads outside --models-dir (through a symbolic "
                                        "link)", 403)
            if not path.is_file():
                raise missing
        except OSError:
            # A name part over 255 bytes, a link loop, a folder we may not read: the OSError would carry the
            # absolute path of --models-dir, which the page must not learn. For the page the file is not there.
            raise missing from None
        return Source(name, str(path), "models-dir")

    # --- listing --------------------------------------------------------------------------------------------------

    def list_networks(self) -> list[Source]:
        return list(self.networks.values()) + self._scan(NETWORK_SUFFIXES, exclude=set(self.networks))

    def list_directions(self) -> list[Source]:
        return list(self.directions.values()) + self._scan(DIRECTIONS_SUFFIXES, exclude=set(self.directions))

    def _scan(self, suffixes: tuple[str, ...], exclude: set[str]) -> list[Source]:
        """Files with these suffixes inside --models-dir: no hidden parts, links that stay inside, sorted."""
        if self.models_dir is None:
            return []
        found = []
        for folder, dirs, files in os.walk(self.models_dir, followlinks=False):
            depth = len(Path(folder).relative_to(self.models_dir).parts)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < MAX_DEPTH else []
            for file in sorted(files):
                if file.startswith(".") or not file.lower().endswith(suffixes):
                    continue
                if suffixes == NETWORK_SUFFIXES and is_training_state(Path(folder) / file):
                    continue                    # a training state holds optimizers too; its snapshot is the network
                name = (Path(folder) / file).relative_to(self.models_dir).as_posix()
                if name in exclude:
                    continue
                try:
                    found.append(self._resolve(name, {}, suffixes, "file"))
                except ParamError:
                    continue                    # a link out of the folder is neither listed nor loadable
                if len(found) >= MAX_LISTED:
                    return found
        return found


def _relative_name(name: str, suffixes: tuple[str, ...], field: str) -> PurePosixPath:
    """Refuse, by looking at the text alone, every name that could reach outside --models-dir."""
    refused = None
    if "\\" in name or ":" in name:
        refused = "backslashes and ':' are not allowed"
    elif name.startswith(("/", "~")):
        refused = "absolute paths are not allowed"
    else:
        parts = PurePosixPath(name).parts
        if any(part == ".." for part in parts):
            refused = "'..' is not allowed"
        elif any(part.startswith(".") for part in parts):
            refused = "hidden files and folders are not allowed"
    if refused:
        raise ParamError(field, f"refused: {quote_name(name)}: {refused}; name a file by its path relative to "
                                "--models-dir, as GET /api/networks lists it", 403)
    if not name.lower().endswith(suffixes):
        raise ParamError(field, f"refused: {quote_name(name)}: only {' and '.join(suffixes)} files may be loaded", 403)
    return PurePosixPath(name)


def quote_name(name: str) -> str:
    """A requested name as messages show it: quoted, and cut short (a name may be 1024 characters)."""
    return repr(name if len(name) <= 80 else name[:77] + "...")
