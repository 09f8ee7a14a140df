"""The ``lookwhere`` command: subcommands, lazy imports, input errors, keys."""

import subprocess
import sys

import pytest

from lookwhere.cli import SUBCOMMANDS, build_parser, main


def test_every_subcommand_has_help():
    parser = build_parser()
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0


def test_building_the_parser_imports_neither_torch_nor_matplotlib():
    code = (
        "import sys; from lookwhere.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'matplotlib', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_demo_without_osie_data_says_where_it_looked(tmp_path, capsys):
    arguments = [
        "demo",
        "--dataset",
        "osie",
        "--fixations",
        str(tmp_path / "nowhere.mat"),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(arguments) == 2
    assert "nowhere.mat" in capsys.readouterr().err


def test_keys_creates_a_curve_pair_zmq_can_load(tmp_path, capsys):
    import zmq.auth

    assert main(["keys", "--out", str(tmp_path), "--name", "rig1"]) == 0
    public, secret = zmq.auth.load_certificate(str(tmp_path / "rig1.key_secret"))
    assert public is not None and secret is not None
    assert len(public) == 40 and len(secret) == 40  # Z85-encoded 32-byte keys
    assert zmq.auth.load_certificate(str(tmp_path / "rig1.key"))[0] == public
    assert "rig1.key_secret" in capsys.readouterr().out
