"""The `cmssw` level in verify: with the hook in exact.load_levels, verify checks the plugin like every
level (table and JUnit cases), and a plugin that is another model's fails with exit code 1."""

import shutil
import xml.etree.ElementTree as ET

import pytest

from tests.plugin_support import compile_with_plugin
from trigger_ml.compile.plugin_host import plugin_path
from trigger_ml.errors import MismatchError
from trigger_ml.verify import exact, junit
from trigger_ml.verify.cmssw import add_cmssw_level
from trigger_ml.verify.run import verify_firmware

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def firmware(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("fw")
    return {name: compile_with_plugin(trained(name)[1], root / name) for name in ("eg_mlp", "eg_cnn")}


@pytest.fixture
def hooked(monkeypatch):
    """exact.load_levels with the integration hook (what /work/notes/cmssw.md asks cli/verify to call)."""
    plain = exact.load_levels
    monkeypatch.setattr(exact, "load_levels", lambda fw, rtl_sim=True: add_cmssw_level(plain(fw, rtl_sim), fw))


def test_cmssw_level_is_checked_and_listed_in_junit(firmware, small_data, hooked, tmp_path):
    out = verify_firmware(firmware["eg_mlp"], small_data, n_fuzz=300, rtl=False, check_fidelity=False,
                          check_budget=False)
    cmssw = [r for r in out.exact if r.level == "cmssw"]
    assert [r.inputs for r in cmssw] == ["data", "fuzzed"] and all(r.ok for r in cmssw) and out.exit_code == 0
    junit.write(tmp_path / "verify.xml", "trigger-ml.verify.eg_mlp", out.cases())
    names = [c.get("name") for c in ET.parse(tmp_path / "verify.xml").iter("testcase")]
    assert "keras == cmssw on data" in names and "keras == cmssw on fuzzed" in names


def test_another_models_plugin_renamed_is_caught(firmware, small_data, hooked, tmp_path):
    fw = tmp_path / "eg_mlp"
    shutil.copytree(firmware["eg_mlp"], fw)
    shutil.copyfile(plugin_path(firmware["eg_cnn"]), plugin_path(fw))
    with pytest.raises(MismatchError, match="plugin of model 'eg_cnn'") as exc:
        verify_firmware(fw, small_data, n_fuzz=10, rtl=False, check_fidelity=False, check_budget=False)
    assert exc.value.exit_code == 1


def test_without_a_plugin_there_is_no_cmssw_level(firmware, tmp_path):
    fw = tmp_path / "eg_mlp"
    shutil.copytree(firmware["eg_mlp"], fw)
    plugin_path(fw).unlink()
    assert "cmssw" not in add_cmssw_level({}, fw)
