"""The verify stage on tiny compiled models: every level exact, JUnit lists each check, and an
injected one-LSB-scale error in the firmware is caught with exit code 1."""

import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_ml.cli import main
from trigger_ml.compile import emulator
from trigger_ml.verify import exact
from trigger_ml.verify.levels import QuantizedModel, csim

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["eg_mlp", "eg_cnn", "ad_autoencoder"])
def test_all_levels_including_rtl_agree_exactly(compiled, small_data, name):
    res = compiled(name, "latency")
    levels = exact.load_levels(res.out)
    assert set(levels) == {"keras", "csim", "da4ml", "rtl"}
    results = exact.compare(levels, exact.inputs_for(res.out, small_data, n_fuzz=300))
    assert len(results) == 6
    for r in results:
        assert r.compared > 0 and r.mismatched == 0, r.name()


def test_cli_verify_writes_junit_with_one_case_per_check(compiled, tmp_path, capsys):
    res = compiled("eg_mlp", "latency")
    main(["verify", str(res.out), "--events", "1000", "--fuzz", "100", "--junit", str(tmp_path / "v.xml")])
    suite = ET.parse(tmp_path / "v.xml").getroot().find("testsuite")
    names = [c.get("name") for c in suite.findall("testcase")]
    assert suite.get("failures") == "0" and len(names) == 6
    assert "keras == rtl on fuzzed" in names and "keras == csim on data" in names
    assert "bit-exact check" in capsys.readouterr().out


def test_an_injected_bias_error_exits_1_with_a_reproducer(compiled, tmp_path):
    fw = tmp_path / "fw"
    shutil.copytree(compiled("eg_mlp", "latency").out, fw)
    bias = fw / "hls" / "firmware" / "weights" / "b3.h"
    text = bias.read_text()
    first = re.search(r"\{([-0-9.e]+),", text)
    bias.write_text(text[: first.start(1)] + repr(float(first.group(1)) + 0.25) + text[first.end(1):])
    emulator.build(fw / "hls", fw / "emulator")  # the C simulation of the edited firmware
    with pytest.raises(SystemExit) as exc:
        main(["verify", str(fw), "--events", "2000", "--fuzz", "100", "--no-rtl", "--junit", str(tmp_path / "v.xml")])
    assert exc.value.code == 1
    rep = np.load(fw / "verify" / "mismatch_csim_data.npz")
    assert rep["expected"].tolist() != rep["got"].tolist()
    suite = ET.parse(tmp_path / "v.xml").getroot().find("testsuite")
    assert int(suite.get("failures")) >= 1


@pytest.fixture(scope="module")
def mlp_levels(compiled, trained):
    res = compiled("eg_mlp", "latency")
    _, run, _ = trained("eg_mlp")
    return QuantizedModel.load(run / "model.keras"), csim(res.out), res.manifest["input_grid"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 64))
def test_random_words_on_the_input_grid_never_mismatch(mlp_levels, seed, n):
    from trigger_ml.verify.vectors import grid_bits

    q, cs, grid = mlp_levels
    i, f = grid_bits(grid)
    words = np.random.default_rng(seed).integers(0, 2 ** (i + f), size=(n, len(i)))
    x = words * np.ldexp(1.0, -f)
    np.testing.assert_array_equal(cs.predict(x), q.predict(x))
