"""Where a command may write: never over a file or folder it did not write itself, unless told to (``--force``).

Everything a command writes carries its writer's mark, so running the command
again may replace its own output while a user's file of the same name is
refused: a JSON file holds the key ``segnas_output``, a PNG a text chunk of
that name, an ONNX model a metadata entry, an HTML page a ``<meta>`` tag of
that name, an output folder a ``.segnas`` file naming the command (a run
folder is recognised by its ``env.json``, see :mod:`segnas.engine.rundir`).
File names come from the command line or from content hashes (an archid),
never from text inside a genotype.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .fileio import atomic_write_text

MARK = "segnas_output"
FOLDER_MARK = ".segnas"
HTML_HEAD_BYTES = 4096  # an HTML page carries its mark in its head, within these first bytes


def mark_of(path: str | os.PathLike) -> str | None:
    """The command that wrote ``path`` (a file or folder), or None when segnas did not write it."""
    path = Path(path)
    try:
        if path.is_dir():
            return json.loads((path / FOLDER_MARK).read_text()).get("command")
        if path.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(path) as im:
                return (getattr(im, "text", None) or {}).get(MARK)
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
            return str(data[MARK]) if isinstance(data, dict) and MARK in data else None
        if path.suffix.lower() in (".html", ".htm"):  # a <meta> tag in the page's head
            with open(path, "rb") as f:
                head = f.read(HTML_HEAD_BYTES).decode("utf-8", errors="replace")
            found = re.search(rf'<meta name="{MARK}" content="([A-Za-z0-9_-]+)">', head)
            return found.group(1) if found else None
        if path.suffix.lower() == ".onnx":
            import onnx

            model = onnx.load(str(path), load_external_data=False)
            return next((p.value for p in model.metadata_props if p.key == MARK), None)
    except Exception:  # unreadable, foreign or corrupt: not ours
        return None
    return None


def claim_file(path: str | os.PathLike, mark: str, force: bool = False) -> Path:
    """``path`` as a file a command writing outputs marked ``mark`` may (re)write: new, one with that same
    mark (the command's own earlier output), or ``force``."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give a file path for the output")
    if path.exists() and not force and mark_of(path) != mark:
        raise ConfigError(f"{path}: exists and was not written by this segnas command; choose another path or "
                          "pass --force to replace it")
    if not path.parent.is_dir():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"{path.parent}: cannot create the folder ({e.strerror}); choose another path") from None
    return path


def claim_folder(path: str | os.PathLike, command: str, force: bool = False) -> Path:
    """``path`` as the output folder of ``segnas <command>``: new, empty, one this command wrote, or ``force``.

    The folder's mark is written before anything else, so a run stopped half way leaves a folder the
    command recognises as its own next time.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: exists and is not a folder; choose another output folder")
    if path.is_dir() and not force:
        owner = mark_of(path)
        if owner is None and any(path.iterdir()):
            raise ConfigError(f"{path}: a folder not written by segnas {command} and not empty; choose another "
                              "output folder or pass --force to write into it")
        if owner is not None and owner != command:
            raise ConfigError(f"{path}: holds the output of 'segnas {owner}'; choose another output folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{path}: cannot create the folder ({e.strerror}); choose another output folder") from None
    if mark_of(path) != command:
        atomic_write_text(path / FOLDER_MARK, json.dumps({"command": command}) + "\n")
    return path


def marked(data: dict[str, Any], command: str) -> dict[str, Any]:
    """A JSON document with its writer's mark (first key)."""
    return {MARK: command, **{k: v for k, v in data.items() if k != MARK}}


def png_text(command: str) -> dict[str, str]:
    """PNG text chunks marking a drawing as written by ``segnas <command>``."""
    return {MARK: command, "Software": "segnas"}
