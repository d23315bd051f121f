"""`trigger-ml run`: the whole chain on tiny configs, the structure of the committed reference
results, resuming without redoing finished stages, and an interruption leaving nothing half-written."""

import json
from pathlib import Path

import pytest

from trigger_ml import pipeline as P
from trigger_ml.cli import main

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_FILES = ("manifest.json", "card.yaml", "report/report.md", "report/report.json", "verify/result.json")

pytestmark = pytest.mark.slow


def _plan(tmp: Path, **kw) -> P.Plan:
    return P.Plan(
        fast=True, cards=ROOT / "models", runs=tmp / "runs", firmware=tmp / "firmware", data_dir=tmp / "data", **kw
    )


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    cwd = Path.cwd()
    import os

    os.chdir(tmp)
    code = 0
    try:
        main(["run", "--fast", "--cards", str(ROOT / "models")])
    except SystemExit as exc:  # a failed gate exits 2
        code = exc.code
    finally:
        os.chdir(cwd)
    return tmp, code


def test_run_fast_reproduces_the_structure_of_the_reference_results(fast_run):
    tmp, code = fast_run
    assert code == 0  # --fast reports fidelity and budget without gating them; a mismatch would be 1
    for model in P.MODELS:
        for rel in REFERENCE_FILES:
            ref, got = ROOT / "firmware" / model / rel, tmp / "firmware" / model / rel
            assert ref.exists(), f"reference result {ref} is not committed"
            assert got.exists(), rel
            if rel.endswith(".json"):
                a, b = json.loads(ref.read_text()), json.loads(got.read_text())
                assert set(a) == set(b), rel
                if rel == "report/report.json":
                    assert set(a["figures"]) == set(b["figures"])
        result = json.loads((tmp / "firmware" / model / "verify" / "result.json").read_text())
        assert all(e["mismatched"] == 0 and e["compared"] > 0 for e in result["exact"])
        assert {e["level"] for e in result["exact"]} == {"csim", "cmssw", "da4ml", "rtl"}
    summary = (tmp / "runs" / "summary.md").read_text()
    assert all(m in summary for m in P.MODELS) and "exact" in summary


def test_a_second_run_reuses_every_stage(fast_run):
    tmp, _ = fast_run
    out = P.run(
        P.Plan(fast=True, cards=ROOT / "models", runs=tmp / "runs", firmware=tmp / "firmware", data_dir=tmp / "data")
    )
    assert out.timings_s == {}
    assert len(out.skipped) == 1 + 4 * len(P.MODELS)


def test_an_interrupted_run_leaves_no_partial_output_and_resumes(tmp_path, monkeypatch):
    import dataclasses

    plan = _plan(tmp_path, models=("eg_mlp",), options=P.StageOptions(synth=False))
    real = P.STAGES

    def interrupted(job):
        job.fw.root.parent.mkdir(parents=True, exist_ok=True)
        raise KeyboardInterrupt  # as if Ctrl-C arrived during the compile stage

    stages = tuple(dataclasses.replace(s, run=interrupted) if s.name == "compile" else s for s in P.STAGES)
    monkeypatch.setattr(P, "STAGES", stages)
    with pytest.raises(KeyboardInterrupt):
        P.run(plan)
    assert (tmp_path / "runs" / "eg_mlp" / "model.keras").exists()
    assert not (tmp_path / "firmware" / "eg_mlp").exists()
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]  # no temporary leftovers
    monkeypatch.setattr(P, "STAGES", real)
    out = P.run(plan)
    assert "data" in out.skipped and "train:eg_mlp" in out.skipped
    assert set(out.timings_s) == {"compile:eg_mlp", "verify:eg_mlp", "report:eg_mlp"}
    assert json.loads((tmp_path / "firmware" / "eg_mlp" / "verify" / "result.json").read_text())["exit_code"] in (0, 2)


def test_a_changed_card_reruns_only_that_model(tmp_path):
    import shutil

    cards = tmp_path / "cards"
    shutil.copytree(ROOT / "models", cards)
    plan = P.Plan(
        fast=True,
        models=("eg_mlp",),
        cards=cards,
        runs=tmp_path / "runs",
        firmware=tmp_path / "fw",
        data_dir=tmp_path / "data",
        to_stage="train",
    )
    P.run(plan)
    (cards / "eg_mlp.yaml").write_text((cards / "eg_mlp.yaml").read_text().replace("seed: 1", "seed: 2"))
    out = P.run(plan)
    assert out.skipped == ["data"] and set(out.timings_s) == {"train:eg_mlp"}


def test_bad_stage_names_and_unknown_models_exit_3(tmp_path):
    for args in (["--from", "nope"], ["--models", "no_such_model"], ["--from", "report", "--to", "data"]):
        with pytest.raises(SystemExit) as exc:
            main(["run", "--fast", "--cards", str(ROOT / "models"), "--runs", str(tmp_path / "r"), *args])
        assert exc.value.code == 3, args


def test_the_full_default_run_reproduces_the_reference_exact_match_results(tmp_path):
    """The README's main job without the report stage (its figures depend on the machine's
    synthesis only through yosys, checked elsewhere): every level exact on the same counts of
    events as the committed reference results."""
    import os

    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        out = P.run(P.Plan(cards=ROOT / "models", to_stage="verify"))
    finally:
        os.chdir(cwd)
    assert out.exit_code in (0, 2)
    for model in P.MODELS:
        ref = json.loads((ROOT / "firmware" / model / "verify" / "result.json").read_text())
        got = json.loads((tmp_path / "firmware" / model / "verify" / "result.json").read_text())
        assert got["exact"] == ref["exact"], model
        assert all(e["mismatched"] == 0 for e in got["exact"])


def test_from_forces_the_stages_from_there_on(fast_run):
    tmp, _ = fast_run
    plan = P.Plan(
        fast=True,
        models=("eg_mlp",),
        cards=ROOT / "models",
        runs=tmp / "runs",
        firmware=tmp / "firmware",
        data_dir=tmp / "data",
        from_stage="verify",
        options=P.StageOptions(synth=False),
    )
    out = P.run(plan)
    assert set(out.timings_s) == {"verify:eg_mlp", "report:eg_mlp"}
    assert {"data", "train:eg_mlp", "compile:eg_mlp"} <= set(out.skipped)
