"""Checks on the files a command is about to write, made before it writes (or computes) anything.

Every command that writes files (a rig and its check image, evaluation tables, a benchmark's JSON, a
screenshot) states its outputs and its inputs up front, so that a typo cannot overwrite an input, two
outputs cannot land on one path, and a missing or read-only folder is reported before minutes of work
rather than after, and before the first of several outputs has replaced an older file.
Frame sinks (videos, frame folders) have their own checks in :mod:`fusioncam.io.sinks`.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from fusioncam.errors import FusioncamError

__all__ = [
    "atomic_write_bytes",
    "check_file_outputs",
    "check_image_output",
    "check_output_folder",
    "check_parent_folder",
    "check_writable_folder",
    "input_files",
]

PathLike = str | os.PathLike


def input_files(specs: Iterable[PathLike | None]) -> set[Path]:
    """Resolved paths of everything the inputs name: files, the files of folders, glob matches.

    Folders are listed one level deep (image sequences are flat); a spec that names nothing is left
    out (reading it fails later with its own message).
    """
    out: set[Path] = set()
    for spec in specs:
        if spec is None or os.fspath(spec) == "":
            continue
        text = os.fspath(spec)
        paths = [Path(m) for m in glob.glob(text)] if any(c in text for c in "*?[") else [Path(text)]
        for p in paths:
            p = p.expanduser()
            if p.is_dir():
                out |= {c.resolve() for c in p.iterdir() if c.is_file()}
                out.add(p.resolve())
            elif p.exists():
                out.add(p.resolve())
    return out


def check_file_outputs(
    outputs: Sequence[tuple[str, PathLike | None]],
    inputs: Iterable[PathLike | None] = (),
    forbidden_dirs: Iterable[tuple[str, PathLike]] = (),
) -> list[Path | None]:
    """Check the files a command will write; returns them as paths (None stays None).

    Args:
        outputs: (what, path) pairs, e.g. ``("rig file", "rig.yaml")``; a None path is not written.
        inputs: files, folders or globs the command reads (see :func:`input_files`).
        forbidden_dirs: (what, folder) pairs nothing may be written into, e.g. the dataset an
            evaluation reads.

    Raises:
        FusioncamError: naming the first output that has no file name, whose folder is missing or
            read-only, that is an existing folder, that is one of the inputs or inside a forbidden
            folder, or that another output also names.
    """
    ins = input_files(inputs)
    forbidden = [(what, Path(d).expanduser().resolve()) for what, d in forbidden_dirs]
    seen: dict[Path, str] = {}
    paths: list[Path | None] = []
    for what, spec in outputs:
        if spec is None:
            paths.append(None)
            continue
        text = os.fspath(spec)
        path = Path(text).expanduser()
        if not text.strip() or not path.name or text.endswith(("/", os.sep)) or path.name in (".", ".."):
            raise FusioncamError(f"{what}: give a file name, got {text!r}")
        if path.is_dir():
            raise FusioncamError(f"{what} {text} is a folder; give a file name")
        check_parent_folder(path, what)
        res = path.resolve()
        if res in ins:
            raise FusioncamError(f"{what} {text} is also an input; choose another name")
        for fwhat, d in forbidden:
            if res.is_relative_to(d):
                raise FusioncamError(f"{what} {text} is inside the {fwhat} {d}; write it elsewhere")
        if res in seen:
            raise FusioncamError(f"{what} {text} is also the {seen[res]}; give each output its own path")
        seen[res] = what
        paths.append(path)
    return paths


def check_parent_folder(path: Path, what: str) -> None:
    """The folder ``path`` goes into must exist (a typo must not create a tree somewhere) and take a
    new file."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        kind = "is not a folder" if parent.exists() else "does not exist (create it first)"
        raise FusioncamError(f"{what}: folder {parent} {kind}")
    check_writable_folder(parent, what)


def check_writable_folder(folder: Path, what: str) -> None:
    """Create and remove a probe file in ``folder``: permission bits do not tell root, nor about
    read-only mounts or immutable folders, so the write itself is tried."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise FusioncamError(f"{what}: cannot write in folder {folder} ({e.strerror or e})") from None


def check_output_folder(folder: PathLike, what: str) -> None:
    """A folder a command will create (with its parents) when missing and write into: it must not be a
    file, and its nearest existing ancestor must be a folder we can write in."""
    if not os.fspath(folder).strip():
        raise FusioncamError(f"{what}: give a folder name")
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise FusioncamError(f"{what} {folder} is a file; give a folder")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise FusioncamError(f"{what} {folder}: {existing} is a file, not a folder")
    check_writable_folder(existing, f"{what} {folder}")


def check_image_output(what: str, path: Path) -> None:
    """Refuse an image path whose extension OpenCV cannot write (before anything is computed)."""
    import cv2  # here, not at import: the CLI imports this module before any OpenCV work

    ext = path.suffix.lower()
    if not ext or not cv2.haveImageWriter(f"x{ext}"):
        raise FusioncamError(
            f"{what} {path}: cannot write '{ext or 'no extension'}' images; use .png or .jpg"
        )


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name in the same folder, then rename."""
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise FusioncamError(f"cannot write {path}: {e.strerror or e}") from None
