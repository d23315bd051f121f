"""CMSSW plugins of the tiny reference models: loaded together in one process, as CMSSW loads them
(RTLD_LOCAL) and with RTLD_GLOBAL, each equals its own C simulation; only three symbols exported."""

import shutil
import subprocess

import numpy as np
import pytest

from trigger_ml.compile import manifest
from trigger_ml.compile.emulator import Interface
from trigger_ml.compile.plugin import EXPORTED, exported_symbols, library_name, namespace_of
from trigger_ml.compile.plugin_host import cmssw_level, plugin_path, run_plugins
from trigger_ml.config import load_card
from trigger_ml.errors import ToolError, UnsupportedError
from trigger_ml.fixed import Grid
from trigger_ml.train.models import model_inputs
from trigger_ml.vectors import extreme_inputs
from trigger_ml.verify.levels import csim

pytestmark = pytest.mark.slow
# the three reference models, and eg_mlp again with distributed arithmetic: hls4ml then generates
# per-model kernels (nnet::dense_da_3, ...) whose names are the same in every model
BUILDS = [
    ("eg_mlp", "latency"),
    ("eg_cnn", "latency"),
    ("ad_autoencoder", "latency"),
    ("eg_mlp", "distributed_arithmetic"),
]
N_RANDOM = 10_000


@pytest.fixture(scope="module")
def plugins(compiled):
    """(name, strategy) -> compiled directory (the session's; compile builds the plugin). Read only."""
    return {(name, strategy): compiled(name, strategy).out for name, strategy in BUILDS}


def _raw_inputs(fw, n_random=N_RANDOM):
    """Raw input words on the model's grid: the extremes of the format and uniformly random words."""
    m = manifest.read(fw)
    iface = Interface.from_json(m["interface"]["emulator"])
    x = extreme_inputs(Grid.from_json(m["input_grid"]), (iface.n_in,), n_random=n_random, seed=3)
    return iface.to_raw(x)


@pytest.mark.parametrize("mode", ["local", "global"])
def test_plugins_loaded_together_each_equal_their_c_simulation(plugins, exact_data, mode):
    """10,000 data windows, then 10,000 random words of the input format and its extremes, per model."""
    runs = []
    for fw in plugins.values():
        data = model_inputs(load_card(fw / "card.yaml"), exact_data).reshape(len(exact_data), -1)
        runs.append((plugin_path(fw), np.concatenate([csim(fw).iface.to_raw(data), _raw_inputs(fw)])))
    outs, infos = run_plugins(runs, mode)
    for (key, fw), (_, raw), out, info in zip(plugins.items(), runs, outs, infos):
        ref = csim(fw).predict_raw(raw)
        assert info["model_sha256"] == manifest.read(fw)["model_sha256"]
        assert len(raw) == 20_006 and len(np.unique(ref)) > 50, key  # outputs vary: equality means something
        bad = np.flatnonzero(np.any(out != ref, axis=1))
        assert len(bad) == 0, f"{key} ({mode}): {len(bad)}/{len(raw)} events differ, first {bad[:1]}"


def test_only_the_factory_functions_and_the_info_query_are_exported(plugins):
    for fw in plugins.values():
        assert exported_symbols(plugin_path(fw)) == sorted(EXPORTED)


def test_without_namespace_and_hidden_symbols_the_models_clash(plugins, tmp_path):
    """The failure the hygiene prevents (cms-sw/cmssw#44435): the same sources built the way the
    hand-written plugins were (global names, default visibility) export the models' weights (w3, b3,
    ...) and templates; loaded with RTLD_GLOBAL, the models then compute with each other's."""
    fws = [plugins["eg_mlp", "latency"], plugins["eg_cnn", "latency"]]
    runs = [(_unisolated_build(fw, tmp_path), _raw_inputs(fw, 200)) for fw in fws]
    assert all(len(exported_symbols(lib)) > 50 for lib, _ in runs)
    outs, _ = run_plugins(runs, "global")
    assert any(np.any(out != csim(fw).predict_raw(raw)) for fw, (_, raw), out in zip(fws, runs, outs))


def _unisolated_build(fw, tmp_path):
    lib = library_name(manifest.read(fw)["model"])
    ns, emu, src = namespace_of(lib), fw / "emulator", tmp_path / lib
    src.mkdir()
    for name in (f"{lib}.h", f"{lib}_project.h", f"{lib}_model.cpp", f"{lib}_plugin.cpp"):
        text = (emu / name).read_text().replace(f"namespace {ns} {{", "").replace(f"}}  // namespace {ns}", "")
        (src / name).write_text(text.replace(f"{ns}::", ""))
    fwd = fw / "hls" / "firmware"
    inc = [f"-I{src}", f"-I{emu}", f"-I{fw / 'hls'}", f"-I{fwd}", f"-I{fwd / 'ap_types'}"]
    cxx = ["g++", "-O1", "-std=c++17", "-fPIC", "-w", *inc]
    for part, extra in (("model", ["-fno-exceptions"]), ("plugin", [])):
        subprocess.run(
            [*cxx, *extra, "-c", str(src / f"{lib}_{part}.cpp"), "-o", str(src / f"{part}.o")],
            check=True,
            capture_output=True,
        )
    out = src / f"{lib}.so"
    subprocess.run(["g++", "-shared", str(src / "model.o"), str(src / "plugin.o"), "-o", str(out)], check=True)
    return out


TYPED = r"""
// One translation unit with every model's header: each model's types in its own namespace. Per model:
// input_t values from raw words, prepare_input(input_t *), read_result(result_t *), raw words out;
// and a payload of the wrong type must throw std::invalid_argument.
#include <dlfcn.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <vector>
#include "hls4ml/emulator.h"
@INCLUDES@

template <class In, class Out, std::size_t NI, std::size_t NO>
void run(const char *lib, const char *in_path, const char *out_path, long events, int out_frac) {
    void *h = dlopen(lib, RTLD_LAZY | RTLD_LOCAL);
    if (!h) { std::fprintf(stderr, "%s\n", dlerror()); std::exit(2); }
    auto create = reinterpret_cast<hls4mlEmulator::create_model_cls *>(dlsym(h, "create_model"));
    auto destroy = reinterpret_cast<hls4mlEmulator::destroy_model_cls *>(dlsym(h, "destroy_model"));
    std::vector<int64_t> raw(events * NI), out(events * NO);
    FILE *f = std::fopen(in_path, "rb");
    if (std::fread(raw.data(), 8, raw.size(), f) != raw.size()) std::exit(3);
    std::fclose(f);
    hls4mlEmulator::Model *m = create();
    for (long e = 0; e < events; e++) {
        In x[NI];
        Out y[NO];
        for (std::size_t i = 0; i < NI; i++)
            x[i].range(In::width - 1, 0) = ap_uint<In::width>((unsigned long long)raw[e * NI + i]);
        m->prepare_input(x);
        m->predict();
        m->read_result(y);
        for (std::size_t j = 0; j < NO; j++) out[e * NO + j] = (int64_t)std::ldexp(y[j].to_double(), out_frac);
    }
    float wrong[NI] = {};
    bool threw = false;
    try { m->prepare_input(wrong); } catch (const std::invalid_argument &) { threw = true; }
    destroy(m);
    if (!threw) { std::fprintf(stderr, "%s accepted a float payload\n", lib); std::exit(4); }
    f = std::fopen(out_path, "wb");
    std::fwrite(out.data(), 8, out.size(), f);
    std::fclose(f);
}

int main(int argc, char **argv) {
    long events = std::atol(argv[1]);
@CALLS@
    return 0;
}
"""


def test_typed_payloads_with_every_models_header_in_one_program(plugins, tmp_path):
    fws = [plugins[name, "latency"] for name in ("eg_mlp", "eg_cnn", "ad_autoencoder")]
    libs = [library_name(manifest.read(fw)["model"]) for fw in fws]
    raws = [_raw_inputs(fw, 500) for fw in fws]
    calls, args = [], []
    for k, (fw, lib, raw) in enumerate(zip(fws, libs, raws)):
        ns = namespace_of(lib)
        raw.tofile(tmp_path / f"in{k}.i64")
        args += [str(plugin_path(fw)), str(tmp_path / f"in{k}.i64"), str(tmp_path / f"out{k}.i64")]
        calls.append(
            f"    run<{ns}::input_t, {ns}::result_t, {ns}::n_inputs, {ns}::n_outputs>("
            f"argv[{2 + 3 * k}], argv[{3 + 3 * k}], argv[{4 + 3 * k}], events, {ns}::output_frac);"
        )
    src = TYPED.replace("@INCLUDES@", "\n".join(f'#include "{lib}.h"' for lib in libs))
    (tmp_path / "typed.cpp").write_text(src.replace("@CALLS@", "\n".join(calls)))
    ap = fws[0] / "hls" / "firmware" / "ap_types"
    subprocess.run(
        [
            "g++",
            "-O1",
            "-std=c++17",
            *(f"-I{fw / 'emulator'}" for fw in fws),
            f"-I{ap}",
            str(tmp_path / "typed.cpp"),
            "-o",
            str(tmp_path / "typed"),
            "-ldl",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run([str(tmp_path / "typed"), str(len(raws[0])), *args], check=True, capture_output=True)
    for k, (fw, raw) in enumerate(zip(fws, raws)):
        out = np.fromfile(tmp_path / f"out{k}.i64", dtype=np.int64).reshape(len(raw), -1)
        np.testing.assert_array_equal(out, csim(fw).predict_raw(raw))


def test_cmssw_level_predicts_like_the_c_simulation_and_catches_another_models_library(plugins, tmp_path):
    fw = plugins["eg_mlp", "latency"]
    x = extreme_inputs(Grid.from_json(manifest.read(fw)["input_grid"]), (10,), n_random=300)
    np.testing.assert_array_equal(cmssw_level(fw).predict(x), csim(fw).predict(x))
    tampered = tmp_path / "tampered"
    shutil.copytree(fw, tampered)
    shutil.copyfile(plugin_path(plugins["eg_cnn", "latency"]), plugin_path(tampered))  # eg_cnn.so renamed eg_mlp.so
    with pytest.raises(ToolError, match="eg_mlp.so does not match the sha256"):  # by its hash, before it runs
        cmssw_level(tampered)


def test_plugin_mk_builds_it_with_g_plus_plus_alone(plugins, tmp_path):
    fw = tmp_path / "fw"
    shutil.copytree(plugins["eg_mlp", "latency"], fw)
    plugin_path(fw).unlink()
    subprocess.run(
        ["make", "-s", "-C", str(fw / "emulator"), "-f", "plugin.mk", "-j2"], check=True, capture_output=True
    )
    assert exported_symbols(plugin_path(fw)) == sorted(EXPORTED)
    raw = _raw_inputs(fw, 300)
    (out,), _ = run_plugins([(plugin_path(fw), raw)])
    np.testing.assert_array_equal(out, csim(fw).predict_raw(raw))


def test_library_name_is_a_sanitised_card_name():
    assert library_name("eg-mlp v2") == "eg_mlp_v2"
    assert namespace_of(library_name("ad_autoencoder")) == "hls4ml_ad_autoencoder"
    with pytest.raises(UnsupportedError):
        library_name("--")
