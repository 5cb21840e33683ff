"""Settings: defaults, YAML round trip, unknown keys with suggestions, type checks, layering."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from fusioncam.config import (
    Settings,
    load_settings,
    merge,
    resolve_settings,
    save_settings,
    user_settings_path,
)
from fusioncam.errors import FusioncamError


class TestSettings:
    def test_defaults_are_valid(self) -> None:
        s = Settings()
        s.validate()
        assert s.engine.clip_refresh == 8
        assert s.display.layout == "side_by_side"

    def test_round_trip_through_yaml(self, tmp_path: Path) -> None:
        s = Settings()
        s.sources.ir, s.sources.vis, s.sources.thermal16 = "/dev/video1", "0", True
        s.sources.sync_tolerance_ms = 12.5
        s.engine.method, s.engine.clip_refresh, s.engine.rig = "laplacian", 4, "rig.yaml"
        s.display.palette, s.display.layout = "jet", "fused_large"
        s.record.side_by_side, s.record.raw_ir, s.record.output_dir = True, True, str(tmp_path)
        path = save_settings(s, tmp_path / "sub" / "settings.yaml")
        assert path.is_file() and not list(path.parent.glob("*.tmp"))
        assert load_settings(path) == s
        assert Settings.from_dict(s.to_dict()) == s

    def test_copy_is_independent(self) -> None:
        s = Settings()
        c = s.copy()
        c.engine.method = "max"
        assert s.engine.method != "max"

    def test_partial_file_overrides_only_its_keys(self, tmp_path: Path) -> None:
        p = tmp_path / "c.yaml"
        p.write_text("engine:\n  method: max\n")
        s = load_settings(p)
        assert s.engine.method == "max" and s.engine.clip_refresh == Settings().engine.clip_refresh

    def test_empty_file_gives_defaults(self, tmp_path: Path) -> None:
        p = tmp_path / "c.yaml"
        p.write_text("")
        assert load_settings(p) == Settings()

    def test_camera_index_number_becomes_a_spec_string(self) -> None:
        assert merge(Settings(), {"sources": {"vis": 0}}).sources.vis == "0"


class TestRejections:
    def test_unknown_key_suggests_close_match(self) -> None:
        with pytest.raises(
            FusioncamError, match=r"unknown setting 'engine.methd'.*did you mean 'engine.method'"
        ):
            merge(Settings(), {"engine": {"methd": "max"}})

    def test_unknown_section(self) -> None:
        with pytest.raises(FusioncamError, match=r"unknown setting 'recrod'.*did you mean 'record'"):
            merge(Settings(), {"recrod": {}})

    @pytest.mark.parametrize(
        "d, pattern",
        [
            ({"engine": {"clip_refresh": "abc"}}, r"engine.clip_refresh: expected int"),
            ({"engine": {"clip_refresh": 0}}, r"clip_refresh must be >= 1"),
            ({"sources": {"pace": "yes"}}, r"sources.pace: expected bool"),
            ({"display": {"palette": "infern"}}, r"did you mean 'inferno'"),
            ({"display": {"layout": "grid"}}, r"display.layout"),
            ({"engine": {"device": "tpu"}}, r"engine.device"),
            ({"engine": "max"}, r"engine must be a mapping"),
            ({"record": {"container": "webm"}}, r"record.container"),
            ({"sources": {"sync_tolerance_ms": -1}}, r"sync_tolerance_ms must be > 0"),
        ],
    )
    def test_bad_values(self, d: dict, pattern: str) -> None:
        with pytest.raises(FusioncamError, match=pattern):
            merge(Settings(), d)

    def test_messages_are_one_line_and_name_the_file(self, tmp_path: Path) -> None:
        p = tmp_path / "bad.yaml"
        p.write_text("engine:\n  clip_refresh: [1, 2\n")
        with pytest.raises(FusioncamError) as e:
            load_settings(p)
        assert "\n" not in str(e.value) and str(p) in str(e.value)

    def test_top_level_must_be_a_mapping(self, tmp_path: Path) -> None:
        p = tmp_path / "list.yaml"
        p.write_text("- 1\n- 2\n")
        with pytest.raises(FusioncamError, match="mapping"):
            load_settings(p)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(FusioncamError, match="not found"):
            load_settings(tmp_path / "nope.yaml")

    def test_yaml_is_read_safely(self, tmp_path: Path) -> None:
        p = tmp_path / "evil.yaml"
        p.write_text("engine: !!python/object/apply:os.system ['true']\n")
        with pytest.raises(FusioncamError, match="not valid YAML"):
            load_settings(p)


class TestLayers:
    def test_order_defaults_user_config_flags(self, tmp_path: Path) -> None:
        user = tmp_path / "user.yaml"
        user.write_text(
            yaml.safe_dump({"engine": {"method": "max", "clip_refresh": 3}, "display": {"palette": "jet"}})
        )
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({"engine": {"clip_refresh": 5}}))
        s = resolve_settings(user_file=user, config_file=config, overrides={"display": {"palette": "gray"}})
        assert s.engine.method == "max"  # user file
        assert s.engine.clip_refresh == 5  # config beats user file
        assert s.display.palette == "gray"  # flags beat everything

    def test_missing_user_file_is_fine_but_a_broken_one_is_reported(self, tmp_path: Path) -> None:
        assert resolve_settings(user_file=tmp_path / "none.yaml") == Settings()
        bad = tmp_path / "user.yaml"
        bad.write_text("engine: {methd: max}\n")
        with pytest.raises(FusioncamError, match=str(bad)):
            resolve_settings(user_file=bad)

    def test_user_settings_path(self, tmp_path: Path) -> None:
        assert user_settings_path({"FUSIONCAM_SETTINGS": str(tmp_path / "s.yaml")}) == tmp_path / "s.yaml"
        assert (
            user_settings_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "fusioncam" / "settings.yaml"
        )
        assert user_settings_path({}).name == "settings.yaml"


@dataclass
class _Inner:
    n: int = 1
    tol: float | None = None


@dataclass
class _Outer:
    """Every kind of field ``apply_mapping`` handles (module level: the hints are resolved by name)."""

    name: str = "a"
    tags: list[str] = field(default_factory=lambda: ["x"])
    sizes: list[int] | None = None
    extra: dict[str, int] = field(default_factory=dict)
    on: bool = False
    inner: _Inner = field(default_factory=_Inner)


class TestGenericLayering:
    """``apply_mapping`` / ``read_yaml_mapping``: the one implementation behind settings, train and rigs."""

    @staticmethod
    def _example() -> _Outer:
        return _Outer()

    def test_nested_optional_lists_and_dicts(self) -> None:
        from fusioncam.config import apply_mapping

        base = self._example()
        out = apply_mapping(
            base,
            {"tags": "p, q", "sizes": [3, 4], "extra": {"k": 2}, "on": True, "inner": {"n": 5, "tol": 2}},
            "test",
        )
        assert out.tags == ["p", "q"]  # "a,b" as a flag gives it
        assert out.sizes == [3, 4] and out.extra == {"k": 2} and out.on is True
        assert out.inner.n == 5 and out.inner.tol == 2.0 and isinstance(out.inner.tol, float)
        assert apply_mapping(out, {"sizes": None, "inner": {"tol": None}}, "test").sizes is None
        # The input is never changed, nested parts included.
        assert base.tags == ["x"] and base.inner.n == 1 and base.inner is not out.inner

    @pytest.mark.parametrize(
        "mapping, what, pattern",
        [
            ({"inner": {"tl": 1}}, None, r"^src: unknown setting 'inner.tl' \(did you mean 'inner.tol'\?\)"),
            ({"nme": "b"}, "config key", r"^src: unknown config key 'nme' \(did you mean 'name'\?\)"),
            ({"inner": {"n": "x"}}, None, r"^src: inner.n: expected int, got 'x'$"),
            ({"on": 1}, "config key", r"^src: config key 'on' must be true or false, got 1$"),
            ({"sizes": ["a"]}, "config key", r"config key 'sizes' must be an integer, got 'a'"),
            ({"sizes": 3}, "config key", r"config key 'sizes' must be a list, got 3"),
            ({"extra": [1]}, "config key", r"config key 'extra' must be a mapping"),
            ({"tags": " , "}, "config key", r"tags: expected a comma-separated list"),
            ({"inner": 3}, None, r"^src: inner must be a mapping, got int$"),
            ([1], None, r"^src: top level must be a mapping, got list$"),
        ],
    )
    def test_rejections_name_the_source_and_the_key(self, mapping, what, pattern) -> None:
        from fusioncam.config import apply_mapping

        base = self._example()
        with pytest.raises(FusioncamError, match=pattern):
            apply_mapping(base, mapping, "src", what=what)
        assert base == self._example()  # a bad layer leaves the previous one intact

    def test_read_yaml_mapping(self, tmp_path: Path) -> None:
        from fusioncam.config import read_yaml_mapping

        p = tmp_path / "c.yaml"
        p.write_text("")
        assert read_yaml_mapping(p, "thing file") == {}
        p.write_text("a: 1\n")
        assert read_yaml_mapping(p, "thing file") == {"a": 1}
        p.write_text("- 1\n")
        with pytest.raises(
            FusioncamError, match=f"thing file {p} must be a mapping at the top level, got list"
        ):
            read_yaml_mapping(p, "thing file")
        with pytest.raises(FusioncamError, match="thing file not found"):
            read_yaml_mapping(tmp_path / "none.yaml", "thing file")
        with pytest.raises(FusioncamError, match="cannot read thing file") as e:
            read_yaml_mapping(tmp_path, "thing file")  # a folder
        assert "\n" not in str(e.value)


def test_fuser_options_give_weight_files_to_network_fusers_only() -> None:
    from fusioncam.config import EngineSettings

    e = EngineSettings(method="mgfusion", weights="net.safetensors", clip_weights="clip.bin")
    assert e.fuser_options() == {"weights": "net.safetensors", "clip_weights": "clip.bin"}
    assert e.fuser_options("laplacian") == {}
    assert EngineSettings(method="mgfusion").fuser_options() == {}
