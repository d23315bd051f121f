"""QONNX and float ONNX import: each small model built here is imported, compiled and verified
(exact against qonnx's executor and every firmware level; fidelity against onnxruntime)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trigger_ml.compile.cache import file_sha256
from trigger_ml.errors import MismatchError, UnsupportedError

from . import front_models as FM
from . import models as M

onnx = pytest.importorskip("onnx")
pytest.importorskip("qonnx")
pytest.importorskip("onnxruntime")

BUILDERS = {"qonnx_2bit": M.qonnx_mlp_2bit, "qonnx_bipolar": M.qonnx_bipolar, "float_mlp": M.float_mlp}


@pytest.fixture(scope="session")
def imported(tmp_path_factory):
    """name -> (run dir, firmware dir, import summary), imported and compiled once per session."""
    from trigger_ml.compile import Options, compile_run
    from trigger_ml.interop import import_model

    cache = {}

    def get(name: str):
        if name not in cache:
            root = tmp_path_factory.mktemp(name)
            src = root / f"{name}.onnx"
            onnx.save(BUILDERS[name](), src)
            summary = import_model(src, root / "run")
            compile_run(root / "run", root / "fw", Options())
            cache[name] = (root / "run", root / "fw", summary)
        return cache[name]

    return get


def _verify(fw, rtl: bool):
    from trigger_ml.verify.run import verify_firmware

    return verify_firmware(fw, None, n_fuzz=300, rtl=rtl)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qonnx_2bit", "qonnx_bipolar"])
def test_qonnx_import_compiles_and_is_exact_against_qonnx_executor(imported, name):
    run, fw, summary = imported(name)
    assert summary["check"] == "exact" and summary["import_check"]["qonnx"]["mismatched"] == 0
    assert summary["import_check"]["qonnx"]["compared"] > 1000
    out = _verify(fw, rtl=True)
    levels = {r.level for r in out.exact}
    # QONNX ROUND (half to even) rounds in the 2-bit MLP: da4ml gets it as exact tie detection
    # (trigger_ml.compile.rounding), so RTL and its software model are checked too
    assert {"csim", "qonnx", "da4ml", "rtl"} <= levels
    for r in out.exact:
        assert r.ok, (r.level, r.mismatched, r.first)
        assert r.compared >= 300


@pytest.mark.slow
def test_bipolar_outputs_are_plus_minus_one_and_match_qonnx(imported):
    from trigger_ml.interop.reference import QonnxExecutor
    from trigger_ml.verify.levels import QuantizedModel

    run, fw, _ = imported("qonnx_bipolar")
    x = np.load(run / "foreign" / "inputs.npy")
    y_ref = np.load(run / "foreign" / "outputs.npy")
    assert set(np.unique(y_ref)) == {-1.0, 1.0}
    np.testing.assert_array_equal(QuantizedModel.load(run / "model.keras").predict(x), y_ref)
    np.testing.assert_array_equal(QonnxExecutor(onnx.load(run / "foreign" / "model.onnx")).predict(x), y_ref)


@pytest.mark.slow
def test_float_onnx_import_is_exact_in_firmware_and_faithful_to_onnxruntime(imported):
    run, fw, summary = imported("float_mlp")
    assert summary["check"] == "fidelity" and summary["reference"] == "onnxruntime"
    out = _verify(fw, rtl=False)
    assert out.exact and all(r.ok for r in out.exact)
    gates = {c.name: c for c in out.gates}
    assert gates["fidelity: argmax agreement"].ok and gates["fidelity: argmax agreement"].value >= 0.99
    assert gates["fidelity: max error / output range"].ok
    assert 0 < gates["fidelity: max error / output range"].value <= 0.01  # rounded, yet close


def test_ir_version_14_is_capped_and_the_run_dir_has_the_format(tmp_path):
    from trigger_ml.compile.driver import read_run
    from trigger_ml.interop import import_model

    src = tmp_path / "m.onnx"
    m = M.qonnx_mlp_2bit(sizes=(4, 4, 2), ir_version=14)
    assert m.ir_version == 14
    onnx.save(m, src)
    import_model(src, tmp_path / "run")
    card, meta, model_file = read_run(tmp_path / "run")
    assert card.task == "imported" and card.input == "tensor" and model_file.exists()
    assert meta["input_shape"] == [4] and meta["input_grid"] == [{"inputs": 4, "format": "fixed<4,2>"}]
    assert onnx.load(tmp_path / "run" / "foreign" / "model.onnx").ir_version == 10
    info = json.loads((tmp_path / "run" / "foreign" / "info.json").read_text())
    assert info["reference"] == "qonnx" and info["check"] == "exact"
    assert [lv["name"] for lv in info["levels"]] == ["import", "source", "qonnx"]


def _quant_chain(name: str, s_in: float, z_in: float, middle: list[str], s_out: float, narrow_out: int):
    """Quant(x, 4 bits, s_in, zero point z_in) -> MatMul (ones 3x2) -> the `middle` ops in a row ->
    Quant(unsigned, 4 bits, s_out, narrow_out): a (1, 3) -> (1, 2) QONNX model."""
    from onnx import TensorProto, helper, numpy_helper

    c = [
        numpy_helper.from_array(np.asarray(v, np.float32), n)
        for n, v in (("s_in", s_in), ("z", 0.0), ("z_in", z_in), ("b4", 4.0), ("w", np.ones((3, 2))), ("s_out", s_out))
    ]
    names = ["h"] + [f"m{j}" for j in range(len(middle))]
    nodes = [
        helper.make_node(
            "Quant", ["x", "s_in", "z_in", "b4"], ["xq"], domain=M.QONNX, signed=1, narrow=0, rounding_mode="ROUND"
        ),
        helper.make_node("MatMul", ["xq", "w"], ["h"]),
        *[helper.make_node(op, [names[j]], [names[j + 1]]) for j, op in enumerate(middle)],
        helper.make_node(
            "Quant",
            [names[-1], "s_out", "z", "b4"],
            ["y"],
            domain=M.QONNX,
            signed=0,
            narrow=narrow_out,
            rounding_mode="ROUND",
        ),
    ]
    g = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        c,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(M.QONNX, 1)])


def _bad_graph():
    return _quant_chain("bad", 0.25, 1.0, ["Erf", "Sin"], 0.5, 1)


def test_unsupported_ops_and_quantizers_are_one_error_listing_all(tmp_path):
    from trigger_ml.interop import import_model

    src = tmp_path / "bad.onnx"
    onnx.save(_bad_graph(), src)
    with pytest.raises(UnsupportedError) as e:
        import_model(src, tmp_path / "run")
    msg = str(e.value)
    assert "2 unsupported node(s)" in msg and "Erf" in msg and "Sin" in msg
    assert not (tmp_path / "run").exists()


def test_cli_import_of_an_unknown_file_exits_3_and_writes_nothing(tmp_path):
    from trigger_ml.cli import main

    src = tmp_path / "model.txt"
    src.write_text("not a model")
    with pytest.raises(SystemExit) as e:
        main(["import", str(src), "--out", str(tmp_path / "run")])
    assert e.value.code == 3 and not (tmp_path / "run").exists()


def test_a_wrong_lowering_is_caught_by_the_import_check(tmp_path, monkeypatch):
    """The import compares the lowered model with the graph and qonnx's executor: a broken rule cannot pass."""
    from trigger_ml.interop import import_model
    from trigger_ml.interop import lower as Lw

    real = Lw._Builder.op_dense

    def off_by_one_lsb(self, n):
        n.weights["bias"] = n.weights["bias"] + 2.0**-3
        return real(self, n)

    monkeypatch.setattr(Lw._Builder, "op_dense", off_by_one_lsb)
    src = tmp_path / "m.onnx"
    onnx.save(M.qonnx_mlp_2bit(sizes=(4, 6, 2)), src)
    with pytest.raises(MismatchError, match="first differing tensor"):
        import_model(src, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text,kif", [("fixed<16,6>", (1, 5, 10)), ("ufixed<8,3>", (0, 3, 5))])
def test_input_format_parses_like_ap_fixed(text, kif):
    from trigger_ml.interop.policy import PolicyOptions

    f = PolicyOptions(input_format=text).input_fixed()
    assert f.kif == kif and (f.rounding, f.overflow) == ("RND", "SAT")


def test_signed_fuzz_vectors_cover_the_range_on_the_grid():
    from trigger_ml.fixed import Fixed, Grid
    from trigger_ml.vectors import extreme_inputs

    grid = Grid.uniform(3, Fixed(True, 1, 2))
    x = extreme_inputs(grid, (3,), n_random=500, seed=0)
    assert x.min() == -2.0 and x.max() == 2.0 - 0.25
    np.testing.assert_array_equal(x * 4, np.round(x * 4))
    assert (x < 0).mean() > 0.3


@pytest.mark.parametrize("version", [1, 2])
def test_trunc_imports_exactly(tmp_path, version):
    """Both Trunc forms, checked by the import against qonnx's executor on every fuzzed input."""
    from trigger_ml.interop import import_model

    src = tmp_path / "t.onnx"
    onnx.save(FM.qonnx_trunc(version)[0], src)
    summary = import_model(src, tmp_path / "run")
    assert summary["import_check"]["qonnx"]["mismatched"] == 0 and summary["import_check"]["qonnx"]["compared"] > 1000
    y = np.load(tmp_path / "run" / "foreign" / "outputs.npy")
    assert len(np.unique(y)) > 8  # the truncation keeps information: equality is not trivial


@pytest.mark.slow
def test_a_changed_foreign_model_is_a_mismatch_at_the_qonnx_level(imported, tmp_path):
    """verify runs the foreign file itself: editing one of its weights is caught by its hash, and an edit the
    manifest agrees with is a mismatch at the qonnx level, named."""
    import shutil

    from onnx import numpy_helper

    _, fw, _ = imported("qonnx_2bit")
    shutil.copytree(fw, tmp_path / "fw", symlinks=True)
    path = tmp_path / "fw" / "reference" / "foreign" / "model.onnx"
    m = onnx.load(path)
    t = next(t for t in m.graph.initializer if t.name == "bias0")
    t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) + 0.5, "bias0"))
    onnx.save(m, path)
    from trigger_ml.errors import ToolError

    with pytest.raises(ToolError, match="model.onnx does not match the sha256"):  # caught by its hash first
        _verify(tmp_path / "fw", rtl=False)
    manifest_file = tmp_path / "fw" / "manifest.json"  # an edit the manifest agrees with: the qonnx level
    man = json.loads(manifest_file.read_text())
    man["outputs_sha256"]["reference/foreign/model.onnx"] = file_sha256(path)
    manifest_file.write_text(json.dumps(man))
    out = _verify(tmp_path / "fw", rtl=False)
    bad = [r for r in out.exact if not r.ok]
    assert [r.level for r in bad] == ["qonnx"] and out.exit_code == 1
    assert "qonnx" in out.diagnosis and out.reproducer is not None and out.reproducer.exists()


def test_a_non_power_of_two_scale_and_a_sigmoid_into_a_quantizer_import_exactly(tmp_path):
    """Quant(scale 0.3) -> MatMul -> Sigmoid -> Quant: thresholds shared by both channels (one
    per-tensor level list), taken from qonnx's executor; exact against it at import."""
    from trigger_ml.interop import import_model

    src = tmp_path / "m.onnx"
    onnx.save(_quant_chain("shared_thresholds", 0.3, 0.0, ["Sigmoid"], 1 / 16, 0), src)
    summary = import_model(src, tmp_path / "run")
    assert summary["exact"] and summary["import_check"]["qonnx"]["mismatched"] == 0
