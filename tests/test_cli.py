"""The CLI dispatcher: every subcommand is reachable, and usage errors are one line with exit code 2."""

from __future__ import annotations

import pytest

from fusioncam.cli import SUBCOMMANDS, build_parser, main


def test_every_subcommand_builds_its_parser() -> None:
    parser = build_parser()  # imports every subcommand module and adds its arguments
    help_text = parser.format_help()
    for name in SUBCOMMANDS:
        assert name in help_text


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--epochs", "abc"],
        ["fuse", "--ir", "a.png"],
        ["calibrate", "points", "--bogus"],
        ["eval"],
        ["--ir"],
    ],
)
def test_usage_errors_are_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("fusioncam") and "error:" in err[0] and "--help" in err[0]


def test_no_arguments_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
