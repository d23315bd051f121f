"""`trigger-ml patterns` and `export --cmssw` on a compiled tiny model."""

import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from trigger_ml.cli.app import app
from trigger_ml.compile.plugin import EXPORTED, exported_symbols
from trigger_ml.compile.plugin_host import run_plugins
from trigger_ml.errors import MismatchError, UnsupportedError
from trigger_ml.patterns import read_file, read_spec, read_values, write_file
from trigger_ml.verify.levels import csim

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fw(compiled, tmp_path_factory):
    import shutil

    dest = tmp_path_factory.mktemp("fw") / "eg_cnn"  # a copy: the patterns land inside it
    shutil.copytree(compiled("eg_cnn", "latency").out, dest)
    return dest


@pytest.fixture(scope="module")
def cli():
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("fmt", ["emp2", "apx"])
def test_patterns_then_compare(fw, cli, tmp_path, fmt):
    out = tmp_path / fmt
    r = cli("patterns", fw, "--format", fmt, "--events", 250, "--out", out)
    assert r.exit_code == 0, r.output
    spec = read_spec(out)
    assert spec["model"] == "eg_cnn" and spec["events"] == 250 and spec["inputs"]["mapping"]["links"] is None
    raw_in = read_values(out, "inputs")
    assert raw_in.shape == (250, 81) and len(np.unique(raw_in)) > 20
    np.testing.assert_array_equal(read_values(out, "outputs"), csim(fw).predict_raw(raw_in))

    captured = [out / f for f in spec["outputs"]["files"]]
    assert cli("patterns", "compare", out, *captured).exit_code == 0
    board = read_file(captured[0])
    board.data[0, 9 * 17] ^= np.uint64(1 << 3)  # event 17, output bit 3
    write_file(tmp_path / "captured.txt", board, fmt)
    r = cli("patterns", "compare", out, tmp_path / "captured.txt")
    assert isinstance(r.exception, MismatchError) and r.exception.exit_code == 1
    assert "event 17: file 0, link 0, frame 153, word 0" in r.exception.what and "value(s) [0]" in r.exception.what


def test_patterns_mapping_file_and_refused_format(fw, cli, tmp_path):
    mapping = tmp_path / "links.yaml"
    mapping.write_text("inputs: {links: [4, 5, 6, 7], frames_per_event: 18}\noutputs: {links: [20], bits: 32}\n")
    r = cli("patterns", fw, "--format", "emp1", "--events", 40, "--out", tmp_path / "p", "--mapping", mapping)
    assert r.exit_code == 0, r.output
    assert read_file(tmp_path / "p" / "inputs_0.txt").links == (4, 5, 6, 7)
    assert read_file(tmp_path / "p" / "expected_0.txt").links == (20,)
    assert isinstance(cli("patterns", fw, "--format", "x2o").exception, UnsupportedError)


def test_export_cmssw_builds_with_make_alone(fw, cli, tmp_path):
    r = cli("export", fw, "--cmssw", tmp_path / "cmssw")
    assert r.exit_code == 0, r.output
    out = tmp_path / "cmssw" / "eg_cnn"
    assert {"Makefile", "BuildFile.xml", "README.md", "eg_cnn.h", "eg_cnn.so", "firmware", "hls4ml"} <= {
        p.name for p in out.iterdir()
    }
    assert "loader_.load_model()" in (out / "README.md").read_text()
    assert '<use name="hls4mlEmulatorExtras"/>' in (out / "BuildFile.xml").read_text()
    (out / "eg_cnn.so").unlink()
    subprocess.run(["make", "-s", "-j2"], cwd=out, check=True, capture_output=True)
    assert exported_symbols(out / "eg_cnn.so") == sorted(EXPORTED)
    raw = csim(fw).iface.to_raw(np.random.default_rng(0).integers(0, 64, size=(200, 81)) / 64.0)
    (y,), _ = run_plugins([(out / "eg_cnn.so", raw)], "global")
    np.testing.assert_array_equal(y, csim(fw).predict_raw(raw))
