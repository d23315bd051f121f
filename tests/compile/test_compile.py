"""Compile the tiny reference models with both strategies; every level must equal the quantized model."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from trigger_ml.compile import Options, compile_run, emulator, manifest
from trigger_ml.compile.cache import tree_hashes
from trigger_ml.config import load_card
from trigger_ml.fixed import Grid
from trigger_ml.train.models import input_shape, model_inputs
from trigger_ml.vectors import extreme_inputs
from trigger_ml.verify.levels import QuantizedModel, csim, rtl_sim, software_model

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
MODELS = ["eg_mlp", "eg_cnn", "ad_autoencoder"]
STRATEGIES = ["latency", "distributed_arithmetic"]


def _inputs(res, run, exact_data):
    card = load_card(run / "card.yaml")
    x = model_inputs(card, exact_data)
    m = res.manifest
    ext = extreme_inputs(Grid.from_json(m["input_grid"]), input_shape(card, exact_data.meta))
    return x, ext.astype(np.float32)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("name", MODELS)
def test_every_level_equals_the_quantized_model(trained, compiled, exact_data, name, strategy):
    _, run, _ = trained(name)
    res = compiled(name, strategy)
    x, ext = _inputs(res, run, exact_data)
    assert len(x) == 10_000
    q = QuantizedModel.load(run / "model.keras")
    cs, sw = csim(res.out), software_model(res.out)
    for xs in (x, ext):
        ref = q.predict(xs)
        np.testing.assert_array_equal(cs.predict(xs), ref)
        np.testing.assert_array_equal(sw.predict(xs), ref)
    # the emulator's own C program, from a vector file, gives the library's raw integers
    both = np.concatenate([x.reshape(len(x), -1), ext.reshape(len(ext), -1)])
    raw_in = cs.iface.to_raw(both)
    out = emulator.run_vectors(res.out / "emulator", raw_in, cs.iface.n_out)
    np.testing.assert_array_equal(out, cs.predict_raw(raw_in))
    np.testing.assert_array_equal(cs.iface.from_raw(out), q.predict(both.reshape(len(both), *x.shape[1:])))


def test_output_varies_so_equality_means_something(trained, compiled, exact_data):
    _, run, _ = trained("eg_mlp")
    x, _ = _inputs(compiled("eg_mlp", "latency"), run, exact_data)
    y = csim(compiled("eg_mlp", "latency").out).predict(x)
    assert len(np.unique(y)) > 50


def test_manifest_records_precisions_formats_and_hashes(compiled):
    res = compiled("eg_mlp", "latency")
    m = manifest.read(res.out)
    assert m["config"]["firmware"]["strategy"] == "latency"
    assert {"hls4ml", "da4ml", "hgq2", "g++"} <= set(m["tools"])
    dense = [row for row in m["layers"] if row["class"] == "Dense"]
    assert len(dense) == 3 and all({"result", "weight", "bias", "accum"} <= set(r) for r in dense)
    assert not any("<16,6>" in json.dumps(r) for r in m["layers"])  # no hls4ml default precision
    assert m["interface"]["emulator"]["n_in"] == 10
    hashes = tree_hashes(res.out)
    for rel, h in m["outputs_sha256"].items():
        assert hashes[rel] == h
    assert "hls/firmware/myproject.cpp" in m["outputs_sha256"] and "rtl/comb.json" in m["outputs_sha256"]
    header = (res.out / "emulator" / "tml_emulator.h").read_text()
    assert m["interface"]["emulator"]["input"] in header and m["model_sha256"] in header


def test_rerun_is_cached_and_uncached_compile_is_byte_identical(trained, compiled, tmp_path):
    _, run, _ = trained("eg_mlp")
    first = compiled("eg_mlp", "latency")
    again = compile_run(run, tmp_path / "again", Options(strategy="latency"))
    assert again.cached
    fresh = compile_run(run, tmp_path / "fresh", Options(strategy="latency", use_cache=False))
    assert not fresh.cached
    assert "emulator library from the build cache" in fresh.notes  # same sources: no C++ rebuilt
    skip = emulator.LIB, emulator.RUNNER
    import difflib

    a, b = tree_hashes(fresh.out, skip), tree_hashes(first.out, skip)
    diffs = {
        rel: "".join(
            difflib.unified_diff(
                (first.out / rel).read_text().splitlines(True), (fresh.out / rel).read_text().splitlines(True), n=1
            )
        )
        for rel in a
        if a[rel] != b.get(rel) and rel.endswith((".yml", ".json", ".h", ".cpp"))
    }
    assert a == b, "\n".join(f"{rel}:\n{d[:3000]}" for rel, d in diffs.items())
    assert (fresh.out / "manifest.json").read_bytes() == (first.out / "manifest.json").read_bytes()


def test_editing_one_weight_rebuilds(trained, compiled, exact_data, tmp_path):
    from trigger_ml.train.fit import load_model

    _, run, _ = trained("eg_mlp")
    edited = tmp_path / "run"
    shutil.copytree(run, edited)
    model = load_model(run / "model.keras")
    layer = model.get_layer("dense1")
    k = layer.kernel.numpy()
    k[0, 0] += 0.5  # several LSBs of any kernel quantizer
    layer.kernel.assign(k)
    model.save(edited / "model.keras")
    res = compile_run(edited, tmp_path / "fw", Options(strategy="latency"))
    assert not res.cached and "emulator library from the build cache" not in res.notes
    x, _ = _inputs(res, edited, exact_data)
    new = csim(res.out).predict(x)
    np.testing.assert_array_equal(new, QuantizedModel(model).predict(x))
    assert np.any(new != csim(compiled("eg_mlp", "latency").out).predict(x))


@pytest.mark.parametrize("name", ["eg_mlp", "ad_autoencoder"])
def test_fast_flags_give_the_same_outputs_as_hls4ml_flags(trained, compiled, exact_data, name):
    res = compiled(name, "latency")
    _, run, _ = trained(name)
    x, ext = _inputs(res, run, exact_data)
    hls4ml_flags = ("-O3", "-std=c++17", "-fPIC", "-fno-gnu-unique", "-w")
    lib, hit = emulator.build_library(res.out / "hls", res.out / "emulator", hls4ml_flags, pch=False)
    assert not hit
    ref = emulator.CSim(lib, csim(res.out).iface)
    for xs in (x, ext):
        np.testing.assert_array_equal(csim(res.out).predict(xs), ref.predict(xs))


def test_emulator_builds_with_make_alone(compiled, exact_data, trained, tmp_path):
    res = compiled("eg_mlp", "latency")
    _, run, _ = trained("eg_mlp")
    shutil.copytree(res.out / "hls", tmp_path / "hls")
    shutil.copytree(res.out / "emulator", tmp_path / "emulator")
    r = subprocess.run(
        ["make", "-C", str(tmp_path / "emulator"), "clean", "all"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr
    x, _ = _inputs(res, run, exact_data)
    cs = csim(res.out)
    raw = cs.iface.to_raw(x[:500])
    np.testing.assert_array_equal(emulator.run_vectors(tmp_path / "emulator", raw, 1), cs.predict_raw(raw))


def test_a_new_layer_kind_from_its_table_entry_alone_avgpool2d(small_data, exact_data, tmp_path):
    """avgpool2d came as one entry of trigger_ml.layers.KINDS: a card uses it, both builders make it,
    compile takes it, and every level is exact on a small CNN."""
    import dataclasses

    from trigger_ml.train.fit import train

    card = load_card(ROOT / "models" / "eg_cnn.yaml")
    layers = [dict(s, type="avgpool2d") if s["type"] == "maxpool2d" else s for s in card.layers]
    card = dataclasses.replace(
        card.with_overrides(training={"epochs": 1, "batch_size": 256, "patience": 1}),
        name="avg_cnn",
        layers=tuple(layers),
    )
    train(card, small_data, tmp_path / "run")
    res = compile_run(tmp_path / "run", tmp_path / "fw", Options())
    assert any(r["class"] == "Pooling2D" for r in res.manifest["layers"]) and res.manifest["rtl"]["written"]
    q = QuantizedModel.load(tmp_path / "run" / "model.keras")
    x, ext = _inputs(res, tmp_path / "run", exact_data)
    levels = [csim(res.out), software_model(res.out), rtl_sim(res.out)]
    for xs in (x[:3000], ext):
        ref = q.predict(xs)
        for level in levels:
            np.testing.assert_array_equal(level.predict(xs), ref)
