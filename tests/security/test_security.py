"""Hostile-but-realistic input, reproduced: cards and firmware directories shared between people,
files from elsewhere. Nothing executes, nothing outside the named output is touched, each attempt
ends with exit 3 and one clear message; tampered library, weights, RTL and cache entries are caught."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from trigger_ml.cli import main
from trigger_ml.compile import Options, compile_run, emulator
from trigger_ml.layout import TMP_PREFIX, FirmwareDir

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
EVIL_NAME = 'x */ __attribute__((constructor)) static void pwn(void) { system("touch PWNED"); } /*'
EVIL_PART = 'xcvu13p-flga2577-2-e"; exec touch PWNED; set x "'


def _exit(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


def _edit_card(src: Path, dst: Path, **changes) -> Path:
    shutil.copytree(src, dst)
    card = yaml.safe_load((dst / "card.yaml").read_text())
    for key, value in changes.items():
        sec, _, field = key.partition("__")
        if field:
            card[sec][field] = value
        else:
            card[sec] = value
    (dst / "card.yaml").write_text(yaml.safe_dump(card))
    return dst


def test_a_card_name_that_closes_the_header_comment_is_refused_and_nothing_runs(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, run, _ = trained("eg_mlp")
    evil = _edit_card(run, tmp_path / "evil_run", name=EVIL_NAME)
    code, err = _exit(["compile", str(evil), "--out", str(tmp_path / "fw")], capsys)
    assert code == 3 and "model name" in err and "not allowed" in err
    assert not (tmp_path / "fw").exists() and not (tmp_path / "PWNED").exists()
    code, err = _exit(["compile", str(evil)], capsys)  # without --out: the name would pick the folder
    assert code == 3 and not (tmp_path / "firmware").exists()


def test_template_values_are_escaped_anyway(tmp_path):
    """Second line of defence: even a name that reached the emulator's sources stays inside its comment."""
    from trigger_ml.fixed import Fixed

    iface = emulator.Interface(2, 1, Fixed(False, 1, 3), Fixed(True, 2, 3))
    emulator.write_sources(tmp_path, iface, EVIL_NAME, 'ab"; system("x"); "', "0.1")
    header = (tmp_path / "tml_emulator.h").read_text()
    first_comment = header[: header.index("*/") + 2]
    assert "constructor" in first_comment  # the name is shown, inside the comment
    assert header.count("*/") == header.count("/*")
    src = (tmp_path / "tml_emulator.cpp").read_text()
    assert 'system("x")' not in src


@pytest.mark.parametrize(
    "args",
    [
        ["--part", EVIL_PART],
        ["--part", "xc2v1000-fg456"],
        ["--clock", "0"],
        ["--clock", "-5"],
        ["--clock", "abc"],
        ["--strategy", "fastest"],
    ],
)
def test_hostile_or_bad_compile_options_exit_3_before_writing(trained, tmp_path, capsys, args):
    _, run, _ = trained("eg_mlp")
    code, err = _exit(["compile", str(run), "--out", str(tmp_path / "fw"), *args], capsys)
    assert code == 3 and "error:" in err and "Traceback" not in err
    assert not (tmp_path / "fw").exists()
    assert not list(tmp_path.rglob("project.tcl")) and not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("name", ["/tmp/victim", "../../x", ".", "..", "a b", "név", "x;rm"])
def test_a_card_name_can_never_pick_a_folder_outside_the_output(tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    card = yaml.safe_load((ROOT / "models" / "eg_mlp.yaml").read_text())
    card["name"] = name
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(card))
    code, err = _exit(["train", "card.yaml", "--data", str(tmp_path / "none.h5")], capsys)
    assert code == 3 and "model name" in err
    assert (victim / "keep.txt").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == [
        "card.yaml",
        "victim",
    ]


def test_an_output_folder_that_holds_other_things_is_never_replaced(trained, tmp_path, capsys, monkeypatch):
    _, run, _ = trained("eg_mlp")
    shelf = tmp_path / "firmware"
    (shelf / "other_model").mkdir(parents=True)
    (shelf / "other_model" / "manifest.json").write_text("{}")
    code, err = _exit(["compile", str(run), "--out", str(shelf)], capsys)
    assert code == 3 and "not a previous output" in err
    assert (shelf / "other_model" / "manifest.json").exists()
    monkeypatch.chdir(tmp_path)
    code, err = _exit(["compile", str(run), "--out", "."], capsys)
    assert code == 3 and "working directory" in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_the_manifest_records_the_library_and_the_rtl(compiled):
    m = json.loads(FirmwareDir(compiled("eg_mlp", "latency").out).manifest.read_text())
    assert "emulator/libtml_emulator.so" in m["outputs_sha256"] and "emulator/run_vectors" in m["outputs_sha256"]
    assert any(k.startswith("rtl/src/") for k in m["outputs_sha256"]) and "rtl/comb.json" in m["outputs_sha256"]


def _evil_library(path: Path, marker: Path) -> None:
    src = marker.with_name(path.stem + ".c")  # beside the marker: not a file added to the firmware's sources
    src.write_text(
        "#include <stdio.h>\n#include <stdint.h>\n#include <stddef.h>\n"
        f'__attribute__((constructor)) static void pwn(void) {{ FILE *f = fopen("{marker}", "w"); '
        "if (f) fclose(f); }\n"
        "int tml_predict(const int64_t *i, int64_t *o, size_t n) { for (size_t e = 0; e < n; e++) o[e] = 0; "
        "return 0; }\n"
    )
    subprocess.run(["gcc", "-shared", "-fPIC", str(src), "-o", str(path)], check=True)


def test_a_relinked_library_is_caught_by_its_hash_and_never_loaded(compiled, tmp_path, capsys):
    fw = FirmwareDir(tmp_path / "fw")
    shutil.copytree(compiled("eg_mlp", "latency").out, fw.root)
    marker = tmp_path / "PWNED"
    _evil_library(fw.emulator_lib, marker)
    code, err = _exit(["verify", str(fw.root), "--events", "200", "--fuzz", "10", "--no-rtl", "--no-budget"], capsys)
    assert code == 3 and "libtml_emulator.so does not match the sha256" in err.replace("\n", " ")
    assert not marker.exists()


def test_a_tampered_rtl_file_is_caught(compiled, tmp_path, capsys):
    fw = FirmwareDir(tmp_path / "fw")
    shutil.copytree(compiled("eg_mlp", "latency").out, fw.root)
    stage = sorted(fw.rtl_src.glob("model_stage*.v"))[0]
    stage.write_text(stage.read_text().replace("assign", "assign /* edited */", 1))
    code, err = _exit(["verify", str(fw.root), "--events", "200", "--fuzz", "10", "--no-budget"], capsys)
    assert code == 3 and stage.name in err and "does not match the sha256" in err.replace("\n", " ")


def test_edited_weights_are_rebuilt_from_hls_and_checked_as_they_are(compiled, tmp_path, caplog):
    """An edited weight is not run against the old library: verify with rebuild rebuilds from hls/
    (saying so) and the edit shows up as a mismatch (without it, the changed tree is refused:
    tests/security/test_firmware_dir.py)."""
    from trigger_ml.data import simulate_dataset
    from trigger_ml.verify.run import verify_firmware

    fw = FirmwareDir(tmp_path / "fw")
    shutil.copytree(compiled("eg_mlp", "latency").out, fw.root)
    w = sorted((fw.hls / "firmware" / "weights").glob("w*.h"))[0]
    text = w.read_text()
    i = text.index("{") + 1
    j = min(k for k in (text.index(",", i), text.index("}", i)))
    w.write_text(text[:i] + repr(float(text[i:j]) + 1.0) + text[j:])
    out = verify_firmware(fw.root, simulate_dataset(500, seed=3), 50, rtl=False, check_fidelity=False, rebuild=True)
    assert "changed since compile" in caplog.text and "rebuilt" in caplog.text
    assert any(r.level == "csim" and r.mismatched for r in out.exact)


def test_a_tampered_compile_cache_entry_is_discarded_and_compiled_again(trained, tmp_path, caplog):
    from trigger_ml.compile import cache
    from trigger_ml.fixed import Grid
    from trigger_ml.vectors import extreme_inputs
    from trigger_ml.verify.levels import csim, golden

    _, run, _ = trained("eg_mlp")
    first = compile_run(run, tmp_path / "a", Options())
    entry = cache.root().firmware(first.manifest["compile_key"])
    assert entry.exists()
    w = sorted((entry / "hls" / "firmware" / "weights").glob("w*.h"))[0]
    w.write_text(w.read_text().replace("{", "{1.5 + ", 1))
    again = compile_run(run, tmp_path / "b", Options())
    assert not again.cached and "does not match its manifest" in caplog.text
    x = extreme_inputs(Grid.from_json(again.manifest["input_grid"]), tuple(again.manifest["input_shape"]))
    import numpy as np

    np.testing.assert_array_equal(csim(again.out).predict(x), golden(again.out).predict(x))


def test_a_tampered_library_cache_entry_is_rebuilt(compiled, tmp_path, caplog):
    from trigger_ml.compile import cache

    fw = FirmwareDir(tmp_path / "fw")
    shutil.copytree(compiled("eg_mlp", "latency").out, fw.root)
    lib, _ = emulator.build_library(fw.hls, fw.emulator)
    _evil_library(lib, tmp_path / "PWNED")
    again, hit = emulator.build_library(fw.hls, fw.emulator)
    assert not hit and "does not match its recorded sha256" in caplog.text
    assert cache.get(again) is not None and not (tmp_path / "PWNED").exists()


def test_an_unwritable_cache_does_not_block_compile(trained, tmp_path, monkeypatch):
    import trigger_ml.compile.cache as C

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")  # root can write anywhere; a file blocks even root
    monkeypatch.setenv("TRIGGER_ML_CACHE", str(blocker / "cache"))
    C._writable_root.cache_clear()
    try:
        _, run, _ = trained("eg_mlp")
        res = compile_run(run, tmp_path / "fw", Options(use_cache=False, rtl=False))
        assert FirmwareDir(res.out).emulator_lib.exists()
    finally:
        C._writable_root.cache_clear()
