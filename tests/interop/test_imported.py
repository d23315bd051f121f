"""End to end: import_graph (policy -> lower -> check -> run directory), compile_run, and verify at
every level (C simulation, da4ml, RTL) plus the import levels (the post-policy graph, exact; the
source graph, exact or fidelity). A few combined models, compiled once per session."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trigger_ml.errors import UnsupportedError
from trigger_ml.interop import ir
from trigger_ml.interop.imported import import_graph
from trigger_ml.interop.policy import PolicyOptions

from . import graphs as G

MODELS = {
    "e2e_cnn": (G.e2e_cnn, PolicyOptions()),
    "e2e_mlp": (G.e2e_mlp, PolicyOptions(max_enumerate=0)),  # batch norm as thresholds
    "e2e_merges": (G.e2e_merges, PolicyOptions()),
    "tfc_like": (G.tfc_like, PolicyOptions()),
    "hgq_like": (G.hgq_like, PolicyOptions()),  # quant -> relu -> quant; an RND input quantizer
}


@pytest.fixture(scope="session")
def imported_graph(tmp_path_factory):
    """name -> (run dir, firmware dir, summary), imported and compiled once per session."""
    from trigger_ml.compile import Options, compile_run

    cache = {}

    def get(name: str):
        if name not in cache:
            root = tmp_path_factory.mktemp(name)
            build, opts = MODELS[name]
            summary = import_graph(build(), root / "run", policy_options=opts)
            compile_run(root / "run", root / "fw", Options())
            cache[name] = (root / "run", root / "fw", summary)
        return cache[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_imported_graph_compiles_and_every_level_is_exact(imported_graph, name):
    from trigger_ml.verify.run import verify_firmware

    run, fw, summary = imported_graph(name)
    out = verify_firmware(fw, None, n_fuzz=400, rtl=True)
    levels = {r.level for r in out.exact}
    assert {"csim", "da4ml", "rtl", "import"} <= levels, levels
    assert ("source" in levels) == summary["exact"]  # exact source: a level; else fidelity gates
    for r in out.exact:
        assert r.ok, (r.level, r.mismatched, r.first, out.diagnosis)
    assert all(c.ok for c in out.gates), [c.message() for c in out.gates]
    assert out.exit_code == 0


@pytest.mark.slow
def test_summary_and_run_directory_say_what_the_policy_did(imported_graph):
    run, fw, summary = imported_graph("e2e_cnn")
    assert summary["check"] == "fidelity" and not summary["exact"]  # the softmax head
    assert summary["input_format"] == "fixed<5,2,RND,SAT>" or summary["input_format"].startswith("fixed<5,2")
    became = [d["became"] for d in summary["policy"]]
    assert any("softmax_table" in b for b in became) and any("rescale" in b for b in became)
    assert summary["import_check"]["source"]["argmax_agreement"] >= 0.99
    info = json.loads((run / "foreign" / "info.json").read_text())
    assert [lv["name"] for lv in info["levels"]] == ["import", "source"]
    assert info["tolerance"] == {"max_rel_error": 0.01, "argmax_agreement": 0.99}
    src, fixed = ir.load(run / "foreign" / "source"), ir.load(run / "foreign" / "fixed")
    assert any(n.op == "softmax" for n in src.nodes) and any(n.op == "softmax_table" for n in fixed.nodes)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["data"]["input_shape"] == [6, 6, 2] and metrics["import"]["check"] == "fidelity"


@pytest.mark.slow
def test_csim_takes_the_users_nchw_layout(imported_graph):
    from trigger_ml.verify.levels import QuantizedModel, csim

    run, fw, summary = imported_graph("tfc_like")
    assert summary["exact"] and summary["input_layout"]["layout"] == "NCHW"
    rng = np.random.default_rng(0)
    x_user = np.floor(rng.uniform(0, 1, (300, 1, 4, 4)) * 256) / 256  # as the source takes it (NCHW)
    x_model = np.transpose(x_user, (0, 2, 3, 1))
    want = G.tfc_like().evaluate(x_model)[0]
    np.testing.assert_array_equal(csim(fw).predict(x_user), want)
    np.testing.assert_array_equal(csim(fw, layout="model").predict(x_model), want)
    np.testing.assert_array_equal(QuantizedModel.load(run / "model.keras").predict(x_model), want)


@pytest.mark.slow
def test_csim_quantizes_off_grid_user_data_as_the_source_does(imported_graph):
    """HGQ-style input quantizer ufixed<5,1> RND; user data on 2**-8 (off that grid): csim(fw).predict
    rounds them as the source's quantizer does, so the outputs equal the source's."""
    from trigger_ml.verify.levels import csim

    run, fw, summary = imported_graph("hgq_like")
    x = np.floor(np.random.default_rng(1).uniform(0, 1, (500, 6, 6)) * 256) / 256
    np.testing.assert_array_equal(csim(fw).predict(x), G.hgq_like().evaluate(x)[0])


def test_import_refuses_multi_input_graphs_and_writes_nothing(tmp_path):
    g = G.merges()
    g.inputs.append(ir.Input("x2", (5,), G.q(1, 1, 2)))
    g.nodes[1].inputs = ["x2"]
    with pytest.raises(UnsupportedError, match="one input"):
        import_graph(g, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_lookup_tables_synthesise_with_yosys(imported_graph):
    """da4ml's lookup tables read .mem files and ask for distributed ROM: the report's yosys flow
    must take them (it did not: `whatever.mem`, then no mapping for the ROM)."""
    from trigger_ml.report.build import build

    run, fw, summary = imported_graph("e2e_cnn")
    assert list((fw / "rtl" / "src" / "memfiles").glob("*.mem"))  # the case this test is about
    figures = build(fw, synth=True)["figures"]
    assert figures["lut"]["value"] > 0 and "yosys" in figures["lut"]["source"]
