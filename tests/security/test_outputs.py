"""Outputs never replace what is not ours (issue 27, items 4 and 5) and names are checked whole
(item 12: a trailing newline). A folder is replaced only when its marker says trigger-ml wrote it and
it holds nothing else; a device, fifo or socket is never replaced; each refusal is exit 3, before
anything is written, and the victim's files are still there."""

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import yaml

from trigger_ml.atomic import atomic_dir, atomic_file, check_destination
from trigger_ml.cli import main
from trigger_ml.errors import TriggerMLError
from trigger_ml.layout import REPORT, FirmwareDir, RunDir

ROOT = Path(__file__).resolve().parents[2]
PART = "xcvu13p-flga2577-2-e"


def _exit(argv, capsys) -> tuple[int, str]:
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _folder(root: Path, files: dict[str, str]) -> dict[str, bytes]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return _tree(root)


def _node(tmp_path: Path, kind: str) -> Path:
    """A fifo, or a character device like /dev/null (1, 3) when this process may make one."""
    p = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(p)
    else:
        try:
            os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except (OSError, AttributeError):
            pytest.skip("this process cannot make a device node")
    return p


def _still(p: Path, kind: str) -> bool:
    mode = p.lstat().st_mode
    return stat.S_ISFIFO(mode) if kind == "fifo" else stat.S_ISCHR(mode)


# item 4: an output folder is replaced only when it is ours


@pytest.mark.slow
def test_compile_out_onto_a_folder_with_an_unrelated_manifest_is_refused(trained, tmp_path, capsys):
    _, run, _ = trained("eg_mlp")
    victim = tmp_path / "victim"
    before = _folder(victim, {"manifest.json": '{"name": "my app", "version": 2}', "src/main.c": "int main;"})
    code, err = _exit(["compile", run, "--out", victim], capsys)
    assert code == 3 and str(victim) in err and "not a previous output" in err
    assert _tree(victim) == before and not list(tmp_path.glob(".tml-tmp-*"))


@pytest.mark.slow
def test_import_out_onto_a_keras_project_is_refused_and_reimport_works(tmp_path, capsys):
    import onnx

    from ..interop.models import qonnx_mlp_2bit

    src = tmp_path / "mlp.onnx"
    onnx.save(qonnx_mlp_2bit(), src)
    proj = tmp_path / "proj"
    before = _folder(
        proj, {"model.keras": "PK\x03\x04 a Keras zip", "analysis.ipynb": '{"cells": []}', "data.csv": "a,b\n1,2\n"}
    )
    code, err = _exit(["import", src, "--out", proj], capsys)
    assert code == 3 and str(proj) in err and "not a previous output" in err
    assert _tree(proj) == before

    run = tmp_path / "run"
    for _ in range(2):  # a fresh folder, then the same folder again: a re-import replaces its own output
        assert _exit(["import", src, "--out", run], capsys)[0] == 0
    assert RunDir(run).model.exists() and RunDir(run).foreign.info.exists()
    (run / "notes.ipynb").write_text("{}")  # ours, but someone put a notebook in it: not replaced
    code, err = _exit(["import", src, "--out", run], capsys)
    assert code == 3 and "notes.ipynb" in err and (run / "notes.ipynb").exists()


@pytest.mark.slow
def test_export_cmssw_onto_an_existing_cmssw_package_is_refused_and_reexport_works(compiled, tmp_path, capsys):
    fw = tmp_path / "fw"
    shutil.copytree(compiled("eg_mlp", "latency").out, fw)
    lib = json.loads(FirmwareDir(fw).manifest.read_text())["model"]
    pkg = tmp_path / "src" / "L1Trigger" / lib
    before = _folder(
        pkg,
        {
            "BuildFile.xml": '<use name="FWCore/Framework"/>\n',
            "plugins/BuildFile.xml": '<flags EDM_PLUGIN="1"/>\n',
            "plugins/Producer.cc": "// the user's producer\n",
        },
    )
    code, err = _exit(["export", fw, "--cmssw", pkg.parent], capsys)
    assert code == 3 and str(pkg) in err and "not a previous output" in err
    assert _tree(pkg) == before

    ours = tmp_path / "cmssw"
    for _ in range(2):  # a fresh folder, then a re-export onto its own output
        assert _exit(["export", fw, "--cmssw", ours], capsys)[0] == 0
    assert (ours / lib / "BuildFile.xml").exists() and (ours / lib / "Makefile").exists()
    (ours / lib / "plugins").mkdir()  # the user's own plugins/ beside our export: not replaced
    code, err = _exit(["export", fw, "--cmssw", ours], capsys)
    assert code == 3 and "plugins" in err and (ours / lib / "plugins").is_dir()


@pytest.mark.slow
def test_our_own_outputs_and_earlier_versions_are_recognised(trained, tmp_path):
    _, run, _ = trained("eg_mlp")
    check_destination(run, RunDir.OUTPUT)  # re-train into runs/<model>
    for name in ("eg_mlp", "eg_cnn", "ad_autoencoder"):  # committed references: manifest, card, report, verify
        ref = tmp_path / name
        shutil.copytree(ROOT / "firmware" / name, ref)
        check_destination(ref, FirmwareDir.OUTPUT)
        check_destination(ref / "report", REPORT)
    (tmp_path / "eg_mlp" / "notebook.ipynb").write_text("{}")
    with pytest.raises(TriggerMLError, match="notebook.ipynb"):
        check_destination(tmp_path / "eg_mlp", FirmwareDir.OUTPUT)
    with pytest.raises(TriggerMLError, match="not a previous output"):
        check_destination(run, FirmwareDir.OUTPUT)  # a run is not a firmware directory


def test_a_folder_without_a_kind_is_replaced_only_when_empty(tmp_path):
    (tmp_path / "d").mkdir()
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "a").write_text("1")
    assert (tmp_path / "d" / "a").read_text() == "1"
    with pytest.raises(TriggerMLError, match="not a previous output"), atomic_dir(tmp_path / "d"):
        pass
    assert (tmp_path / "d" / "a").read_text() == "1"


# item 5: a device, fifo or socket is never replaced


@pytest.mark.parametrize("kind", ["fifo", "chardev"])
def test_atomic_writes_refuse_device_nodes_and_links_to_them(tmp_path, kind):
    node = _node(tmp_path, kind)
    link = tmp_path / "link"
    link.symlink_to(node)
    for dest in (node, link):
        for write in (atomic_file, atomic_dir):
            with pytest.raises(TriggerMLError, match="not a regular file or folder"), write(dest):
                pytest.fail("the block must not run")
    assert _still(node, kind) and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([kind, "link"])  # nothing written beside them


@pytest.mark.parametrize("kind", ["fifo", "chardev"])
def test_data_out_naming_a_device_is_refused(tmp_path, capsys, kind):
    node = _node(tmp_path, kind)
    code, err = _exit(["data", "simulate", "--events", "20", "--out", node], capsys)
    assert code == 3 and str(node) in err and "not a regular file" in err
    assert _still(node, kind)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fifo", "chardev"])
def test_verify_junit_naming_a_device_is_refused_before_verifying(compiled, tmp_path, capsys, kind):
    fw = compiled("eg_mlp", "latency").out
    node = _node(tmp_path, kind)
    argv = ["verify", fw, "--events", "200", "--fuzz", "10", "--no-rtl", "--no-budget", "--junit", node]
    code, err = _exit(argv, capsys)
    assert code == 3 and str(node) in err and "not a regular file" in err
    assert _still(node, kind)


# item 12: a name or part with a trailing newline is not a name or part


def _card(tmp_path: Path, **changes) -> Path:
    card = yaml.safe_load((ROOT / "models" / "eg_mlp.yaml").read_text())
    for key, value in changes.items():
        sec, _, field = key.partition("__")
        if field:
            card[sec][field] = value
        else:
            card[sec] = value
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(card))
    return path


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"name": "eg_mlp\n"}, "model name"),
        ({"firmware__part": PART + "\n"}, "not a part number"),
        ({"layers": [{"type": "dense", "units": 1, "name": "logit\n"}]}, "not an identifier"),
    ],
)
def test_a_trailing_newline_in_a_card_name_part_or_layer_is_refused(tmp_path, capsys, monkeypatch, changes, said):
    monkeypatch.chdir(tmp_path)
    card = _card(tmp_path, **changes)
    code, err = _exit(["train", card, "--data", tmp_path / "none.h5"], capsys)
    assert code == 3 and said in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.yaml"]


def test_a_trailing_newline_in_a_part_or_fixed_spelling_is_refused():
    from trigger_ml.fixed import Fixed
    from trigger_ml.fpga import family_of

    assert family_of(PART).name == "xcup"
    with pytest.raises(TriggerMLError, match="not a part number"):
        family_of(PART + "\n")
    assert Fixed.parse("fixed<8,3>") == Fixed.parse(" ap_fixed<8, 3> ")


@pytest.mark.slow
def test_compile_part_with_a_trailing_newline_exits_3_before_writing(trained, tmp_path, capsys):
    _, run, _ = trained("eg_mlp")
    code, err = _exit(["compile", run, "--out", tmp_path / "fw", "--part", PART + "\n"], capsys)
    assert code == 3 and "not a part number" in err
    assert not (tmp_path / "fw").exists()
