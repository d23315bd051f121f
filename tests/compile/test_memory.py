"""Compiles estimate g++'s peak memory before they start (issue 27, item 11): above what the machine
has they exit 3 with the estimate and --force, before anything is written; --force proceeds; two
large builds never run at once. No real large compile: the memory reader and the builds are
replaced where the test says so."""

import threading
import time
from pathlib import Path

import pytest

from trigger_ml.cli import main
from trigger_ml.compile import driver, emulator, memory
from trigger_ml.errors import EXIT_USAGE


def _project(root: Path, values: int, code: int = 0) -> Path:
    """An hls4ml-like project: one weights header of `values` elements, `code` bytes of generated code."""
    w = root / "firmware" / "weights"
    w.mkdir(parents=True)
    (w / "w2.h").write_text(
        "//Numpy array shape [4, 2]\n#ifndef W2_H_\n#define W2_H_\n\n"
        f"dense_weight_t w2[{values}] = {{{', '.join(['0.25'] * values)}}};\n\n#endif\n"
    )
    (w / "b2.h").write_text("dense_bias_t b2[2] = {0.5, -1};\n")
    (root / "firmware" / "myproject.cpp").write_text("// x\n" * (code // 5))
    return root


def test_the_estimate_grows_with_the_weights_and_the_generated_code(tmp_path):
    small = memory.estimate(_project(tmp_path / "a", 320))
    big = memory.estimate(_project(tmp_path / "b", 60_000))
    coded = memory.estimate(_project(tmp_path / "c", 320, code=2_000_000))
    assert small.values == 322 and big.values == 60_002
    assert memory.BASE <= small.peak_bytes < big.peak_bytes and small.peak_bytes < coded.peak_bytes
    assert small.peak_bytes < 1e9  # a tiny model: what the reference models measure (under 0.5 GB)


def test_large_builds_run_one_after_another():
    small, large = memory.Estimate(300, 0.4e9, 0), memory.Estimate(60_000, 9.5e9, 0)
    assert memory.parallel(small, 24e9)
    assert not memory.parallel(large, 64e9)  # never two large g++ at once, whatever the machine
    assert not memory.parallel(memory.Estimate(300, 1.5e9, 0), 2.5e9)  # two do not fit


def test_available_memory_is_read():
    assert 0 < memory.available_bytes() < 1 << 50


def _fake_builds(monkeypatch) -> list[tuple[str, float, float]]:
    """Replace the two g++ builds by 0.3 s sleeps that record when they ran."""
    spans: list[tuple[str, float, float]] = []
    lock = threading.Lock()

    def span(name: str) -> None:
        t = time.perf_counter()
        time.sleep(0.3)
        with lock:
            spans.append((name, t, time.perf_counter()))

    monkeypatch.setattr(emulator, "build", lambda *a, **k: span("emulator") or False)
    monkeypatch.setattr(driver, "_plugin", lambda *a, **k: span("plugin") or {"written": False, "reason": "test"})
    return spans


def _overlap(spans) -> bool:
    (_, a0, a1), (_, b0, b1) = sorted(spans, key=lambda s: s[1])
    return b0 < a1


@pytest.mark.slow
def test_compile_refuses_above_available_memory_and_force_proceeds(trained, tmp_path, monkeypatch, capsys):
    _, run, _ = trained("eg_mlp")
    spans = _fake_builds(monkeypatch)
    converted, convert = [], driver.hls.convert
    monkeypatch.setattr(driver.hls, "convert", lambda *a, **k: converted.append(a))
    monkeypatch.setattr(memory, "available_bytes", lambda: 50e6)  # 50 MB: below any g++ build
    out = tmp_path / "fw"
    with pytest.raises(SystemExit) as exc:
        main(["compile", str(run), "--out", str(out), "--no-rtl", "--no-cache"])
    err = capsys.readouterr().err
    assert exc.value.code == EXIT_USAGE, err
    assert "GB per g++ build" in err and "0.1 GB this machine has available" in err and "--force" in err
    assert not out.exists() and not spans and not converted  # nothing written or converted, no g++ started
    assert not [p for p in tmp_path.iterdir() if p.name != "fw"]  # no temporary left beside it
    monkeypatch.setattr(driver.hls, "convert", convert)

    try:
        code = main(["compile", str(run), "--out", str(out), "--no-rtl", "--no-cache", "--force"])
    except SystemExit as stop:
        code = stop.code
    assert code in (0, None), capsys.readouterr().err
    assert (out / "manifest.json").exists() and sorted(s[0] for s in spans) == ["emulator", "plugin"]
    assert not _overlap(spans)  # little memory available: one build after the other


@pytest.mark.slow
def test_large_builds_do_not_overlap_and_small_ones_do(trained, tmp_path, monkeypatch):
    _, run, _ = trained("eg_mlp")
    opts = driver.Options(rtl=False, use_cache=False)
    spans = _fake_builds(monkeypatch)
    driver.compile_run(run, tmp_path / "small", opts)
    assert _overlap(spans)  # a small model on a machine with room: side by side
    spans.clear()
    monkeypatch.setattr(memory, "estimate", lambda hls_dir: memory.Estimate(60_000, 9.5e9, 0))
    monkeypatch.setattr(memory, "available_bytes", lambda: 64e9)
    driver.compile_run(run, tmp_path / "large", opts)
    assert len(spans) == 2 and not _overlap(spans)


@pytest.mark.slow
def test_the_estimate_before_conversion_counts_the_weights_hls4ml_writes(trained, compiled):
    """Refused before hls4ml converts (a large project takes minutes to write): from the model's kernels
    and biases, a lower bound of the project's values (hgq2's per-weight bit widths are not counted)."""
    from trigger_ml.train.fit import load_model

    _, run, _ = trained("eg_cnn")
    model = load_model(run / "model.keras")
    before = memory.from_model(model)
    after = memory.count_values(compiled("eg_cnn", "latency").out / "hls")
    kernels = sum(int(w.numpy().size) for w in model.weights if w.path.endswith(("/kernel", "/bias")))
    assert before.values == kernels and 0 < before.values <= after
    assert before.peak_bytes == memory.peak(before.values, 0)
