"""Settings of the live application as dataclasses: one YAML file, CLI flags on top, the GUI edits them.

Layers, lowest first: the defaults below, the per-user settings file saved by the GUI on close
(:func:`user_settings_path`), a ``--config`` YAML file, then command-line flags. Every layer is a
partial mapping of the same shape as :meth:`Settings.to_dict`; :func:`merge` applies one onto a
:class:`Settings`. Unknown keys are rejected with a close-match suggestion (a typo in a config file must
not be silently ignored), and values are type-checked, so a bad file gives one clear
:class:`FusioncamError` line instead of a crash deep in the pipeline.

The layering itself is generic and shared: :func:`read_yaml` / :func:`read_yaml_mapping` (one YAML
reader with one-line errors, also used for rig files) and :func:`apply_mapping` (a partial mapping onto
any dataclass, also used by ``fusioncam train`` for :class:`~fusioncam.models.train.TrainConfig`).

No Qt here: the GUI stores this same object through :func:`save_settings` (plain YAML), which keeps the
settings readable and editable by hand and usable by the CLI without Qt.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fusioncam.errors import FusioncamError

__all__ = [
    "PALETTES",
    "LAYOUTS",
    "DEVICES",
    "CONTAINERS",
    "SourceSettings",
    "EngineSettings",
    "DisplaySettings",
    "RecordSettings",
    "Settings",
    "read_yaml",
    "read_yaml_mapping",
    "apply_mapping",
    "merge",
    "load_yaml",
    "load_settings",
    "save_settings",
    "user_settings_path",
    "resolve_settings",
]

#: Display palettes for the IR view: fixed colour maps (cv2.applyColorMap), never per-frame autoscaled.
PALETTES = ("gray", "inferno", "ironbow", "jet", "turbo")
#: "side_by_side": IR | VIS | fused in a row; "fused_large": the fused view large, IR and VIS beside it.
LAYOUTS = ("side_by_side", "fused_large")
DEVICES = ("auto", "cpu", "cuda")
CONTAINERS = ("mp4", "mov", "m4v", "avi", "mkv")

SETTINGS_ENV = "FUSIONCAM_SETTINGS"


@dataclass
class SourceSettings:
    """The two inputs. A spec is a /dev/videoN path, a camera index, a video file or an image sequence."""

    ir: str = ""
    vis: str = ""
    thermal16: bool = False  # read the IR camera as raw 16-bit (Y16) and map it to 8-bit smoothly
    pace: bool = True  # play file sources at their own fps (stand-ins for cameras)
    loop: bool = False  # restart file sources at their end (the demo)
    sync_tolerance_ms: float | None = None  # None: half a frame period of the slower source


@dataclass
class EngineSettings:
    method: str = "mgfusion"
    device: str = "auto"
    clip_refresh: int = 8  # CLIP features are recomputed every K frames (and on a scene change)
    rig: str | None = None  # rig YAML (IR->VIS homography); None: the cameras already see the same pixels
    weights: str | None = None  # checkpoint of a network fuser (mgfusion); None: the one it ships
    clip_weights: str | None = None  # CLIP weights file for a CLIP-guided network; None: the cache

    def fuser_options(self, method: str | None = None) -> dict[str, str]:
        """Keyword arguments for ``create_fuser(method)``: the weight files, for network fusers only."""
        from fusioncam.processing.fusers import fuser_info

        method = method or self.method
        if fuser_info(method).classical:
            return {}
        files = {"weights": self.weights, "clip_weights": self.clip_weights}
        return {k: v for k, v in files.items() if v}


@dataclass
class DisplaySettings:
    palette: str = "inferno"
    layout: str = "side_by_side"


@dataclass
class RecordSettings:
    """What a recording writes. The fused stream is always written; the others are optional."""

    output_dir: str = "~/fusioncam"
    side_by_side: bool = False
    raw_ir: bool = False
    raw_vis: bool = False
    container: str = "mp4"  # mp4/mov/m4v: MPEG-4 Part 2 (mp4v); avi/mkv: MJPG (what OpenCV's wheel writes)
    queue_size: int = 64  # results waiting to be written; beyond it frames are dropped (and counted)


@dataclass
class Settings:
    sources: SourceSettings = field(default_factory=SourceSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    display: DisplaySettings = field(default_factory=DisplaySettings)
    record: RecordSettings = field(default_factory=RecordSettings)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any, source: str = "settings") -> Settings:
        return merge(cls(), d, source=source)

    def copy(self) -> Settings:
        return Settings.from_dict(self.to_dict())

    def validate(self) -> None:
        """Check the values that have a fixed set of choices or a range; raise one clear line."""
        _choice(self.display.palette, PALETTES, "display.palette")
        _choice(self.display.layout, LAYOUTS, "display.layout")
        _choice(self.engine.device.split(":")[0], DEVICES, "engine.device")
        if self.engine.clip_refresh < 1:
            raise FusioncamError(f"engine.clip_refresh must be >= 1, got {self.engine.clip_refresh}")
        if self.record.queue_size < 1:
            raise FusioncamError(f"record.queue_size must be >= 1, got {self.record.queue_size}")
        _choice(self.record.container, CONTAINERS, "record.container")
        tol = self.sources.sync_tolerance_ms
        if tol is not None and tol <= 0:
            raise FusioncamError(f"sources.sync_tolerance_ms must be > 0, got {tol}")


def _choice(value: str, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        close = difflib.get_close_matches(value, choices, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise FusioncamError(f"{name}: unknown value '{value}'{hint}; choose one of: {', '.join(choices)}")


# --- generic layering: one YAML reader and one typed mapping-onto-dataclass, for every config ---------

T = typing.TypeVar("T")

#: How a type is named in an error: (short, long), e.g. "expected int" / "must be an integer".
_TYPE_WORDS: dict[Any, tuple[str, str]] = {
    bool: ("bool", "true or false"),
    int: ("int", "an integer"),
    float: ("float", "a number"),
    str: ("str", "a string"),
    list: ("list", "a list"),
    dict: ("mapping", "a mapping"),
}


def read_yaml(path: str | os.PathLike, what: str) -> Any:
    """The parsed content of a YAML file (``yaml.safe_load``: a config file never runs code).

    ``what`` names the file in the one-line errors ("settings file", "config file", "rig file"):
    missing, unreadable (a folder, not text) or not valid YAML. An empty file gives None.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FusioncamError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else e
        raise FusioncamError(f"cannot read {what} {path}: {reason}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else "parse error"
        raise FusioncamError(f"{what} {path} is not valid YAML: {first}") from None


def read_yaml_mapping(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """:func:`read_yaml` for files whose top level is a mapping of keys (an empty file: ``{}``)."""
    data = read_yaml(path, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        path = Path(path).expanduser()
        raise FusioncamError(f"{what} {path} must be a mapping at the top level, got {type(data).__name__}")
    return data


def _split_csv(text: str, name: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise FusioncamError(f"{name}: expected a comma-separated list, got {text!r}")
    return items


class _TypeMismatch(Exception):
    """A value of the wrong type; :func:`_apply` turns it into the one-line user error."""

    def __init__(self, hint: Any, value: Any):
        super().__init__(hint, value)
        self.hint, self.value = hint, value


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """``value`` checked (and lightly converted) against a field's type hint; never ``eval()``.

    Handles Optional/unions (the first member that accepts the value), bool, int, float (an int is
    accepted), str (an int is accepted: a camera index written as a number in YAML is still a spec),
    ``list[X]`` (a string "a,b" is split at commas, as a flag would give it) and ``dict``. Other hints
    pass the value through unchanged.
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        first: _TypeMismatch | None = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except _TypeMismatch as e:
                first = first or e
        raise first or _TypeMismatch(hint, value)
    if origin is list or hint is list:
        (inner,) = typing.get_args(hint) or (Any,)
        if isinstance(value, str):
            value = _split_csv(value, name)
        if not isinstance(value, list):
            raise _TypeMismatch(list, value)
        return [_coerce(v, inner, name) for v in value]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise _TypeMismatch(dict, value)
        return dict(value)
    if isinstance(value, bool) and hint in (int, float, str):
        raise _TypeMismatch(hint, value)  # YAML's true/false is no number and no name
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int):
        return value
    if hint is float and isinstance(value, (int, float)):
        if not math.isfinite(value):  # YAML's .nan/.inf, or "nan" on the command line: never a setting
            raise FusioncamError(f"{name} must be a finite number, got {value}")
        return float(value)
    if hint is str and isinstance(value, (str, int)):
        return str(value)
    if hint in _TYPE_WORDS:
        raise _TypeMismatch(hint, value)
    return value


def _mismatch_message(name: str, e: _TypeMismatch, what: str | None) -> str:
    short, long = _TYPE_WORDS.get(e.hint, (getattr(e.hint, "__name__", str(e.hint)), str(e.hint)))
    if what is None:  # nested settings: the dotted path says what it is ("engine.clip_refresh")
        return f"{name}: expected {short}, got {e.value!r}"
    return f"{what} '{name}' must be {long}, got {e.value!r}"


def _apply(obj: Any, mapping: Any, source: str, what: str | None, prefix: str) -> None:
    """Set the fields of dataclass ``obj`` in place from ``mapping``, descending into nested dataclasses."""
    if not isinstance(mapping, dict):
        where = prefix.rstrip(".") or "top level"
        raise FusioncamError(f"{source}: {where} must be a mapping, got {type(mapping).__name__}")
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for key, value in mapping.items():
        key = str(key)
        name = prefix + key
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            known = ", ".join(prefix + n for n in names)
            raise FusioncamError(f"{source}: unknown {what or 'setting'} '{name}'{hint}; known: {known}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            _apply(current, value, source, what, name + ".")
            continue
        try:
            setattr(obj, key, _coerce(value, hints[key], name))
        except _TypeMismatch as e:
            raise FusioncamError(f"{source}: {_mismatch_message(name, e, what)}") from None
        except FusioncamError as e:
            raise FusioncamError(f"{source}: {e}") from None


def apply_mapping(obj: T, mapping: Any, source: str, *, what: str | None = None) -> T:
    """A copy of the dataclass ``obj`` with the partial ``mapping`` (same shape as ``asdict``) applied.

    Nested dataclasses take nested mappings; values are type-checked against the field hints (see
    :func:`_coerce`). Unknown keys are rejected with the closest valid one, since a typo in a config
    file must not be silently ignored. ``source`` starts every message (the file, "command line");
    ``what`` names a key in them ("config key": "unknown config key 'epoch'", "config key 'epochs'
    must be an integer"); None suits nested settings named by dotted path ("unknown setting
    'engine.methd'", "engine.clip_refresh: expected int"). ``obj`` itself is never changed (a deep copy
    is edited), so a bad layer leaves the previous one intact. Validating the result is the caller's job.
    """
    out = copy.deepcopy(obj)
    if mapping is not None:
        _apply(out, mapping, source, what, "")
    return out


def merge(settings: Settings, d: Any, source: str = "settings") -> Settings:
    """Apply a partial mapping (same shape as ``to_dict()``) onto a copy of ``settings`` and validate."""
    out = apply_mapping(settings, d, source)
    try:
        out.validate()
    except FusioncamError as e:
        raise FusioncamError(f"{source}: {e}") from None
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a settings YAML file as a mapping (empty file: empty mapping), with one-line errors."""
    return read_yaml_mapping(path, "settings file")


def load_settings(path: str | Path, base: Settings | None = None) -> Settings:
    """``base`` (defaults if None) overridden by the YAML file at ``path``."""
    return merge(base or Settings(), load_yaml(path), source=f"settings file {Path(path).expanduser()}")


def save_settings(settings: Settings, path: str | Path) -> Path:
    """Write settings as YAML atomically (temporary name, then rename), creating the folder."""
    path = Path(path).expanduser()
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w") as f:
            f.write("# fusioncam settings (written by the GUI on close; edit freely)\n")
            yaml.safe_dump(settings.to_dict(), f, sort_keys=False)
        os.replace(tmp, path)
    except OSError as e:
        raise FusioncamError(f"cannot write settings file {path}: {e.strerror or e}") from None
    return path


def user_settings_path(env: typing.Mapping[str, str] | None = None) -> Path:
    """Where the GUI keeps settings between runs.

    ``$FUSIONCAM_SETTINGS`` if set (tests and portable installs), else
    ``$XDG_CONFIG_HOME/fusioncam/settings.yaml`` (``~/.config`` when unset), the freedesktop convention.
    Reads the environment only; never changes it.
    """
    env = os.environ if env is None else env
    if env.get(SETTINGS_ENV):
        return Path(env[SETTINGS_ENV]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "fusioncam" / "settings.yaml"


def resolve_settings(
    *,
    user_file: str | Path | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Defaults <- per-user file (if it exists) <- ``--config`` file <- flag overrides.

    A broken per-user file is an error too (naming the file), not silently replaced: the user may have
    edited it by hand and should know why their settings were not applied.
    """
    settings = Settings()
    if user_file is not None and Path(user_file).expanduser().is_file():
        settings = load_settings(user_file, settings)
    if config_file is not None:
        settings = load_settings(config_file, settings)
    if overrides:
        settings = merge(settings, overrides, source="command line")
    return settings
