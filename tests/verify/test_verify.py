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
    assert set(levels) == {"keras", "csim", "cmssw", "da4ml", "rtl"}
    results = exact.compare(levels, exact.inputs_for(res.out, small_data, n_fuzz=300))
    assert len(results) == 8
    for r in results:
        assert r.compared > 0 and r.mismatched == 0, r.name()


def _copy_with_card(src, dest, **sections):
    """A copy of a compiled model directory whose card.yaml has `sections` replaced."""
    import yaml

    shutil.copytree(src, dest)
    card = yaml.safe_load((dest / "card.yaml").read_text())
    card.update(sections)
    (dest / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return dest


GENEROUS = {
    "fidelity": {"max_auc_loss": 1.0, "max_efficiency_loss": 1.0, "min_anomaly_auc": {}},
    "budget": {"lut": 10**7, "dsp": 10**4, "latency_ns": 10**4, "ii": 1},
}


def test_cli_verify_writes_junit_with_one_case_per_check(compiled, tmp_path, capsys):
    fw = _copy_with_card(compiled("eg_mlp", "latency").out, tmp_path / "fw", **GENEROUS)
    main(["verify", str(fw), "--events", "1000", "--fuzz", "100", "--junit", str(tmp_path / "v.xml")])
    suite = ET.parse(tmp_path / "v.xml").getroot().find("testsuite")
    names = [c.get("name") for c in suite.findall("testcase")]
    assert suite.get("failures") == "0" and len(names) == 8 + 2 + 4  # exact pairs, fidelity, budget
    assert "keras == rtl on fuzzed" in names and "keras == csim on data" in names
    assert "fidelity: AUC loss (float - quantized)" in names and "budget: lut <= 1e+07" in names
    out = capsys.readouterr().out
    assert "bit-exact check" in out and "yosys synthesis" in out  # the report's best figure, synthesised


def _inject_bias_error(fw):
    """Add 0.25 to the first bias of the layer whose weights are b3 (dense1 of eg_mlp)."""
    bias = fw / "hls" / "firmware" / "weights" / "b3.h"
    text = bias.read_text()
    first = re.search(r"\{([-0-9.e]+),", text)
    bias.write_text(text[: first.start(1)] + repr(float(first.group(1)) + 0.25) + text[first.end(1) :])
    emulator.build(fw / "hls", fw / "emulator")  # the C simulation of the edited firmware


def test_an_injected_bias_error_exits_1_names_the_layer_and_saves_a_reproducer(compiled, tmp_path, capsys):
    fw = tmp_path / "fw"
    shutil.copytree(compiled("eg_mlp", "latency").out, fw)
    _inject_bias_error(fw)
    argv = ["verify", str(fw), "--events", "2000", "--fuzz", "100", "--no-rtl", "--rebuild"]  # the edit is compiled
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--junit", str(tmp_path / "v.xml")])
    assert exc.value.code == 1
    rep = np.load(fw / "verify" / "mismatch_csim_data.npz")
    assert rep["expected"].tolist() != rep["got"].tolist()
    assert str(rep["layer"]) == "dense1"
    assert "first diverging layer 'dense1'" in capsys.readouterr().err.replace("\n", " ")
    suite = ET.parse(tmp_path / "v.xml").getroot().find("testsuite")
    assert int(suite.get("failures")) >= 1
    assert not list((fw / "verify").glob(".*tmp*"))  # no half-written reproducer


def test_a_narrowed_layer_precision_is_named(compiled, tmp_path):
    from trigger_ml.verify.run import verify_firmware

    fw = tmp_path / "fw"
    shutil.copytree(compiled("eg_mlp", "latency").out, fw)
    defines = fw / "hls" / "firmware" / "defines.h"
    m = re.search(r"typedef ap_fixed<(\d+),(-?\d+)> dense2_t;", defines.read_text())
    assert m, "dense2's result type is where the test expects it"
    w, i = int(m.group(1)), int(m.group(2))
    defines.write_text(defines.read_text().replace(m.group(0), f"typedef ap_fixed<{w - 3},{i}> dense2_t;"))
    emulator.build(fw / "hls", fw / "emulator")
    out = verify_firmware(fw, exact_data_small(), n_fuzz=100, rtl=False, check_fidelity=False, rebuild=True)
    assert out.exit_code == 1 and {r.level for r in out.mismatched} == {"csim", "cmssw"}  # both built from hls/
    assert out.divergence is not None and out.divergence.layer == "dense2", out.diagnosis
    assert out.divergence.compared_layers == ["dense1", "dense2"]


def exact_data_small():
    from trigger_ml.data import simulate_dataset

    return simulate_dataset(2000, seed=11)


@pytest.mark.parametrize("name", ["eg_mlp", "eg_cnn", "ad_autoencoder"])
def test_the_layer_trace_finds_no_divergence_in_correct_firmware(compiled, small_data, name):
    from trigger_ml.layout import FirmwareDir
    from trigger_ml.verify.trace import compared_layers, first_diverging_layer

    fw = compiled(name, "latency").out
    q = QuantizedModel.load(FirmwareDir(fw).model)
    x = exact.inputs_for(fw, small_data, n_fuzz=20)
    events = np.concatenate([x["data"][:20], x["fuzzed"]])
    for e in events:
        assert first_diverging_layer(fw, q.float64, e) is None
    expected = {
        "eg_mlp": ["dense1", "dense2", "logit"],
        "eg_cnn": ["conv1", "pool1", "dense1", "logit"],
        "ad_autoencoder": ["enc1", "latent", "dec1", "dec2", "diff", "square", "score"],
    }[name]
    assert compared_layers(fw, q.float64, events[0]) == expected


def test_a_failed_fidelity_threshold_exits_2(compiled, tmp_path):
    fw = _copy_with_card(
        compiled("eg_mlp", "latency").out,
        tmp_path / "fw",
        budget=GENEROUS["budget"],
        fidelity={"max_auc_loss": -1.0, "max_efficiency_loss": 1.0, "min_anomaly_auc": {}},
    )
    with pytest.raises(SystemExit) as exc:
        main(["verify", str(fw), "--events", "1000", "--fuzz", "10", "--no-rtl", "--junit", str(tmp_path / "v.xml")])
    assert exc.value.code == 2
    failed = [
        c.get("name") for c in ET.parse(tmp_path / "v.xml").getroot().iter("testcase") if c.find("failure") is not None
    ]
    assert failed == ["fidelity: AUC loss (float - quantized)"]


def test_an_anomaly_fidelity_minimum_is_checked_per_class(compiled, small_data, tmp_path):
    from trigger_ml.verify.run import verify_firmware

    fw = _copy_with_card(
        compiled("ad_autoencoder", "latency").out,
        tmp_path / "fw",
        budget={},
        fidelity={"max_auc_loss": 1.0, "max_efficiency_loss": 1.0, "min_anomaly_auc": {"spike": 1.01}},
    )
    out = verify_firmware(fw, small_data, n_fuzz=10, rtl=False)
    assert out.exit_code == 2
    assert [c.name for c in out.failed_gates] == ["fidelity: spike AUC (minimum)"]
    assert {"spike", "diphoton", "displaced"} <= set(out.physics["quantized"]["per_class"])


def test_an_exceeded_budget_exits_2_naming_the_figure_and_its_source(compiled, tmp_path, capsys):
    fw = _copy_with_card(
        compiled("eg_mlp", "latency").out,
        tmp_path / "fw",
        fidelity=GENEROUS["fidelity"],
        budget={"lut": 10, "latency_ns": 10**4, "ii": 1},
    )
    with pytest.raises(SystemExit) as exc:
        main(["verify", str(fw), "--events", "500", "--fuzz", "10", "--no-rtl"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "budget: lut <= 10" in err and "yosys synthesis" in err
    with pytest.raises(SystemExit) as exc:  # without synthesis the next best source, named
        main(["verify", str(fw), "--events", "500", "--fuzz", "10", "--no-rtl", "--no-synth"])
    assert exc.value.code == 2 and "da4ml estimate" in capsys.readouterr().err.replace("\n", " ")


def test_verify_and_the_report_give_the_same_budget_verdict(compiled, tmp_path):
    """One verdict: `run` takes it from the report stage, `verify --budget` asks the report for it."""
    from trigger_ml.report.build import budget_verdict, write

    fw = _copy_with_card(
        compiled("eg_mlp", "latency").out,
        tmp_path / "fw",
        fidelity=GENEROUS["fidelity"],
        budget={"lut": 1500, "ff": 10**6, "latency_ns": 10**4, "ii": 1},
    )
    rep = write(fw)
    got = budget_verdict(fw)
    assert [(c.name, c.ok, c.value, c.detail) for c in got] == [
        (c["check"], c["ok"], c["value"], c["source"]) for c in rep["budget"]
    ]
    assert any(c.detail.startswith("yosys synthesis") for c in got)


def test_assert_bit_exact_passes_on_firmware_and_names_the_layer_on_a_fault(compiled, small_data, tmp_path):
    from trigger_ml.layout import FirmwareDir
    from trigger_ml.testing import assert_bit_exact

    src = compiled("eg_mlp", "latency").out
    x = exact.inputs_for(src, small_data, n_fuzz=50)["data"]
    assert assert_bit_exact(FirmwareDir(src).model, src, x) == dict.fromkeys(("csim", "cmssw", "da4ml", "rtl"), len(x))
    fw = tmp_path / "fw"
    shutil.copytree(src, fw)
    _inject_bias_error(fw)
    with pytest.raises(AssertionError, match="first diverging layer 'dense1'"):
        assert_bit_exact(None, fw, x, rtl=False, rebuild=True)


@pytest.fixture(scope="module")
def mlp_levels(compiled, trained):
    res = compiled("eg_mlp", "latency")
    _, run, _ = trained("eg_mlp")
    return QuantizedModel.load(run / "model.keras"), csim(res.out), res.manifest["input_grid"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 64))
def test_random_words_on_the_input_grid_never_mismatch(mlp_levels, seed, n):
    from trigger_ml.fixed import Grid

    q, cs, grid = mlp_levels
    fmts = Grid.from_json(grid).formats()
    w, f = np.array([x.width for x in fmts]), np.array([x.frac for x in fmts])
    words = np.random.default_rng(seed).integers(0, 2**w, size=(n, len(fmts)))
    x = words * np.ldexp(1.0, -f)
    np.testing.assert_array_equal(cs.predict(x), q.predict(x))


def test_data_of_another_window_size_is_one_error(compiled, tmp_path, capsys):
    """The CNN takes 9x9 windows: a 7x7 data file is refused before anything runs (exit 3)."""
    from trigger_ml.data import SimConfig, from_windows, simulate, write_h5

    write_h5(from_windows(simulate(300, SimConfig(window=7), 3)), tmp_path / "w7.h5")
    with pytest.raises(SystemExit) as exc:
        main(["verify", str(compiled("eg_cnn", "latency").out), "--data", str(tmp_path / "w7.h5"), "--no-budget"])
    err = capsys.readouterr().err.replace("\n", " ")
    assert exc.value.code == 3 and "(7, 7, 1)" in err and "(9, 9, 1)" in err
