"""Settings: defaults, YAML round trip, unknown keys with suggestions, type checks, layering."""

from __future__ import annotations

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
