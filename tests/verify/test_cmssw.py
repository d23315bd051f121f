"""The `cmssw` level in verify: the plugin is checked like every level (table and JUnit cases); a
plugin that is another model's (renamed) is caught by its hash before it runs."""

import shutil
import xml.etree.ElementTree as ET

import pytest

from trigger_ml.compile.plugin_host import plugin_path
from trigger_ml.errors import ToolError
from trigger_ml.verify import junit
from trigger_ml.verify.run import verify_firmware

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def firmware(compiled):
    return {name: compiled(name, "latency").out for name in ("eg_mlp", "eg_cnn")}  # read only


def test_cmssw_level_is_checked_and_listed_in_junit(firmware, small_data, tmp_path):
    out = verify_firmware(firmware["eg_mlp"], small_data, n_fuzz=300, rtl=False, check_fidelity=False)
    cmssw = [r for r in out.exact if r.level == "cmssw"]
    assert [r.inputs for r in cmssw] == ["data", "fuzzed"] and all(r.ok for r in cmssw) and out.exit_code == 0
    junit.write(tmp_path / "verify.xml", "trigger-ml.verify.eg_mlp", out.cases())
    names = [c.get("name") for c in ET.parse(tmp_path / "verify.xml").iter("testcase")]
    assert "keras == cmssw on data" in names and "keras == cmssw on fuzzed" in names


def test_another_models_plugin_renamed_is_caught_by_its_hash(firmware, small_data, tmp_path):
    fw = tmp_path / "eg_mlp"
    shutil.copytree(firmware["eg_mlp"], fw)
    shutil.copyfile(plugin_path(firmware["eg_cnn"]), plugin_path(fw))
    with pytest.raises(ToolError, match="eg_mlp.so does not match the sha256") as exc:
        verify_firmware(fw, small_data, n_fuzz=10, rtl=False, check_fidelity=False)
    assert exc.value.exit_code == 3
