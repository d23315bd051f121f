"""A firmware directory from someone else (a pull request, a shared folder) as hostile input: its
manifest's fields never reach generated code, its sources are not compiled and run unless asked
(--rebuild), links out of it are refused without reading through them, and the sizes of the buffers
handed to the emulator library come from the library. Each exploit proves itself by a PWNED file."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trigger_ml.cli import main
from trigger_ml.compile.cache import file_sha256, tree_hashes
from trigger_ml.compile.plugin import library_name
from trigger_ml.layout import FirmwareDir

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
VERIFY = ["--events", "200", "--fuzz", "10", "--no-rtl", "--no-budget", "--no-fidelity"]


def _exit(argv, capsys) -> tuple[int, str]:
    """Run the command line; its exit code (0 when it returns) and its output on one line."""
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, (out.out + out.err).replace("\n", " ")


def _firmware(compiled, tmp_path: Path) -> FirmwareDir:
    fw = FirmwareDir(tmp_path / "fw")
    shutil.copytree(compiled("eg_mlp", "latency").out, fw.root)
    return fw


def _edit_manifest(fw: FirmwareDir, **changes) -> None:
    m = json.loads(fw.manifest.read_text())
    for key, value in changes.items():
        sec, _, field = key.partition("__")
        if field:
            m["interface"][sec][field] = value
        else:
            m[key] = value
    fw.manifest.write_text(json.dumps(m, indent=2))


def _tree(fw: FirmwareDir) -> dict[str, str]:
    return tree_hashes(fw.root)


def test_item1_export_refuses_manifest_fields_that_are_code_and_never_writes_into_the_firmware(
    compiled, tmp_path, capsys, monkeypatch
):
    """manifest.json's model / model_sha256 holding a newline, `$(shell ...)` and a constructor:
    export exits 3 naming the field, writes nothing, and `make -n` anywhere finds nothing to run."""
    monkeypatch.chdir(tmp_path)
    pwned = tmp_path / "PWNED"
    payload = (
        f"\n$(shell touch {pwned})\n"
        f'__attribute__((constructor)) static void pwn(void) {{ fclose(fopen("{pwned}", "w")); }}\n'
    )
    for field, value in (("model", "eg_mlp" + payload), ("model_sha256", "0" * 64 + payload)):
        fw = _firmware(compiled, tmp_path / field)
        m = json.loads(fw.manifest.read_text())
        if field == "model":  # the attacker also ships a library under the name the model name gives
            lib = fw.plugin(library_name(value))
            shutil.copyfile(fw.plugin("eg_mlp"), lib)
            m["outputs_sha256"][lib.relative_to(fw.root).as_posix()] = file_sha256(lib)
        fw.manifest.write_text(json.dumps({**m, field: value}, indent=2))
        before = _tree(fw)
        dest = tmp_path / field / "cmssw"
        code, err = _exit(["export", fw.root, "--cmssw", dest], capsys)
        for makefile in dest.rglob("Makefile"):  # what the original wrote: make -n ran the shell command
            subprocess.run(["make", "-n", "-C", str(makefile.parent)], capture_output=True, check=False)
        assert not pwned.exists()
        assert code == 3 and field in err and not dest.exists(), err
        assert _tree(fw) == before  # the input firmware directory is not modified


def test_item1_export_builds_a_missing_plugin_into_the_export_not_into_the_firmware(compiled, tmp_path, capsys):
    fw = _firmware(compiled, tmp_path)
    plugin = fw.plugin("eg_mlp")
    plugin.unlink()
    before = _tree(fw)
    main(["export", str(fw.root), "--cmssw", str(tmp_path / "cmssw")])
    out = tmp_path / "cmssw" / "eg_mlp"
    assert (out / "eg_mlp.so").is_file() and (out / "Makefile").is_file()
    assert _tree(fw) == before and not plugin.exists()  # nothing written into the input
    r = subprocess.run(["make", "-n", "-C", str(out)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


def test_item1_plugin_sources_take_only_an_identifier_and_a_sha256():
    """Second line of defence: the plugin's spec refuses what the manifest check would."""
    from trigger_ml.compile.emulator import Interface
    from trigger_ml.compile.plugin import PluginSpec
    from trigger_ml.errors import SchemaError
    from trigger_ml.fixed import Fixed

    iface = Interface(2, 1, Fixed(False, 1, 3), Fixed(True, 2, 3))
    with pytest.raises(SchemaError, match="model name"):
        PluginSpec('x"\n$(shell touch PWNED)', "0" * 64, iface, "0.1")
    with pytest.raises(SchemaError, match="sha256"):
        PluginSpec("eg_mlp", "0" * 64 + " n_outputs=9", iface, "0.1")


def test_item2_an_edited_source_is_refused_not_compiled_and_run(compiled, tmp_path, capsys):
    """An edited myproject.cpp with a constructor: verify and export refuse the changed tree (exit 3,
    naming the file) and nothing of it runs; --rebuild is what compiles and runs it, and says so."""
    fw = _firmware(compiled, tmp_path)
    pwned = tmp_path / "PWNED"
    cpp = fw.hls / "firmware" / "myproject.cpp"
    cpp.write_text(
        f'#include <cstdio>\n__attribute__((constructor)) static void pwn() {{ std::fclose(std::fopen("{pwned}", '
        '"w")); }\n' + cpp.read_text()
    )
    code, err = _exit(["verify", fw.root, *VERIFY], capsys)
    assert not pwned.exists()  # the original compiled the edit and loaded it (exit 0)
    assert code == 3 and "hls/firmware/myproject.cpp" in err and "--rebuild" in err, err
    code, err = _exit(["export", fw.root, "--cmssw", tmp_path / "cmssw"], capsys)
    assert code == 3 and "hls/firmware/myproject.cpp" in err and not (tmp_path / "cmssw").exists(), err
    shadow = fw.emulator / "cmath"  # a file compile never wrote, found before the standard header
    shutil.copyfile(cpp, shadow)
    cpp.write_text(cpp.read_text().split("\n", 2)[2])  # the recorded file back as compiled
    code, err = _exit(["verify", fw.root, *VERIFY], capsys)
    assert code == 3 and "emulator/cmath" in err and "myproject.cpp" not in err, err
    assert not pwned.exists()


def test_item2_a_link_out_of_the_firmware_is_refused_and_nothing_is_read_through_it(compiled, tmp_path, capsys):
    fw = _firmware(compiled, tmp_path)
    secret = tmp_path / "secret.h"
    secret.write_text("TOP_SECRET_TOKEN_42 = 1;\n")
    weights = sorted((fw.hls / "firmware" / "weights").glob("w*.h"))[0]
    weights.unlink()
    weights.symlink_to(secret)
    for extra in ([], ["--rebuild"]):  # even when asked to rebuild
        code, err = _exit(["verify", fw.root, *VERIFY, *extra], capsys)
        assert code == 3 and "symbolic link" in err and weights.name in err, err
        assert "TOP_SECRET_TOKEN_42" not in err
    code, err = _exit(["export", fw.root, "--cmssw", tmp_path / "cmssw"], capsys)
    assert code == 3 and "symbolic link" in err and "TOP_SECRET_TOKEN_42" not in err, err


def test_item3_the_output_size_comes_from_the_library(compiled, tmp_path, capsys):
    """interface.emulator.n_out edited: 0 is refused by the manifest check (the original wrote past a
    zero-length buffer: SIGSEGV), and a plausible wrong size by the library's own tml_n_out()."""
    fw = _firmware(compiled, tmp_path)
    _edit_manifest(fw, emulator__n_out=2)
    code, err = _exit(["verify", fw.root, *VERIFY], capsys)
    assert code == 3 and "writes 1 outputs" in err and "manifest says 10 and 2" in err, err
    _edit_manifest(fw, emulator__n_out=0)
    r = subprocess.run(
        [sys.executable, "-m", "trigger_ml.cli", "verify", str(fw.root), *VERIFY],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert r.returncode == 3 and "n_out" in r.stdout + r.stderr, (r.returncode, r.stderr[-2000:])


def test_item3_a_library_that_cannot_say_its_sizes_is_not_run(compiled, tmp_path):
    from trigger_ml.compile.emulator import CSim, Interface
    from trigger_ml.errors import SchemaError, ToolError

    fw = _firmware(compiled, tmp_path)
    iface = Interface.from_json(json.loads(fw.manifest.read_text())["interface"]["emulator"])
    with pytest.raises(SchemaError, match="takes 10 inputs and writes 1 outputs"):
        CSim(fw.emulator_lib, Interface(iface.n_in, 3, iface.input, iface.output))
    src = tmp_path / "old.c"
    src.write_text(
        "#include <stddef.h>\n#include <stdint.h>\nint tml_predict(const int64_t *i, int64_t *o, size_t n) "
        "{ return 0; }\n"
    )
    old = tmp_path / "libold.so"
    subprocess.run(["gcc", "-shared", "-fPIC", str(src), "-o", str(old)], check=True)
    with pytest.raises(ToolError, match="tml_n_in"):
        CSim(old, iface)


def test_item12_export_fixes_name_the_cmssw_option_not_out(compiled, tmp_path, capsys):
    fw = _firmware(compiled, tmp_path)
    theirs = tmp_path / "cmssw" / "eg_mlp"
    theirs.mkdir(parents=True)
    (theirs / "notes.txt").write_text("someone else's folder")
    code, err = _exit(["export", fw.root, "--cmssw", tmp_path / "cmssw"], capsys)
    assert code == 3 and "--cmssw" in err and "--out" not in err, err
    assert (theirs / "notes.txt").exists()


@pytest.mark.parametrize(
    "layers",
    [
        "x",
        [{"layer": "dense1", "shape": [0], "traced": True}],
        [{"layer": "dense1", "shape": ["24"], "traced": True}],
        [{"layer": "dense1", "shape": [24], "traced": "yes"}],
        [{"layer": "dense1\n", "shape": [24], "traced": True}],
        [{"layer": "dense1", "shape": [24], "traced": True}] * 10_001,
    ],
)
def test_item3_the_layer_table_that_sizes_the_trace_reads_is_validated(layers):
    """The mismatch trace sizes its reads of the library's trace buffers by the manifest's layer
    table: a row that is not a name, a list of positive sizes and a flag is refused before use."""
    from trigger_ml.compile import manifest
    from trigger_ml.errors import SchemaError

    p = ROOT / "firmware" / "eg_mlp" / "manifest.json"
    m = json.loads(p.read_text())
    manifest.validate(p, m)  # the committed reference passes
    m["layers"] = layers
    with pytest.raises(SchemaError, match="layers is not a list"):
        manifest.validate(p, m)
