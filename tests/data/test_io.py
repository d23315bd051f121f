import h5py
import numpy as np
import pytest

from trigger_ml.data import RootSchema, read_dataset, simulate_dataset, write_h5
from trigger_ml.data.io import read_root, write_npz, write_root
from trigger_ml.errors import SchemaError


@pytest.fixture(scope="module")
def ds():
    return simulate_dataset(500, seed=9)


def _assert_same(a, b):
    for name in ("images", "features", "labels", "pt", "impact"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.class_names == b.class_names
    assert a.lsb_gev == b.lsb_gev


def test_hdf5_round_trip(ds, tmp_path):
    back = read_dataset(write_h5(ds, tmp_path / "d.h5"))
    _assert_same(ds, back)
    assert back.meta["seed"] == 9 and back.meta["pu"] == 200.0
    assert back.meta["sim_config"]["window"] == 9


def test_npz_round_trip(ds, tmp_path):
    _assert_same(ds, read_dataset(write_npz(ds, tmp_path / "d.npz")))


def test_root_round_trip_with_schema(ds, tmp_path):
    schema = write_root(ds, tmp_path / "d.root")
    back = read_root(tmp_path / "d.root", schema)
    _assert_same(ds, back)  # features recomputed from the images equal the stored ones


def test_root_missing_branch_names_field_and_branch(ds, tmp_path):
    schema = write_root(ds, tmp_path / "d.root")
    bad = RootSchema(schema.tree, {**schema.branches, "labels": "trueClass"}, schema.class_names, 0.25)
    with pytest.raises(SchemaError, match=r"branch 'trueClass' for field 'labels'"):
        read_root(tmp_path / "d.root", bad)


def test_root_schema_from_dict_requires_keys():
    with pytest.raises(SchemaError, match="'lsb_gev'"):
        RootSchema.from_dict({"tree": "Events", "branches": {}, "class_names": ["eg"]})


def test_hdf5_missing_field_is_named(ds, tmp_path):
    path = write_h5(ds, tmp_path / "d.h5")
    with h5py.File(path, "a") as f:
        del f["features"]
    with pytest.raises(SchemaError, match="field 'features' is missing"):
        read_dataset(path)


def test_mistyped_images_are_named(tmp_path):
    np.savez(
        tmp_path / "x.npz",
        images=np.random.rand(4, 9, 9),
        labels=np.zeros(4, int),
        class_names=np.array(["eg"]),
        lsb_gev=0.25,
    )
    with pytest.raises(SchemaError, match="'images' must hold integer counts"):
        read_dataset(tmp_path / "x.npz")


def test_wrong_shape_and_bad_labels_are_named(tmp_path):
    np.savez(
        tmp_path / "s.npz",
        images=np.zeros((4, 9, 7), int),
        labels=np.zeros(4, int),
        class_names=np.array(["eg"]),
        lsb_gev=0.25,
    )
    with pytest.raises(SchemaError, match="shape"):
        read_dataset(tmp_path / "s.npz")
    np.savez(
        tmp_path / "l.npz",
        images=np.zeros((4, 9, 9), int),
        labels=np.array([0, 1, 2, 3]),
        class_names=np.array(["eg", "pu"]),
        lsb_gev=0.25,
    )
    with pytest.raises(SchemaError, match="'labels' has values outside 0..1"):
        read_dataset(tmp_path / "l.npz")


def test_nan_features_are_rejected(ds, tmp_path):
    bad = ds.subset(slice(0, 10))
    bad.features = bad.features.copy()
    bad.features[3, 2] = np.nan
    write_npz(bad, tmp_path / "n.npz")
    with pytest.raises(SchemaError, match="NaN"):
        read_dataset(tmp_path / "n.npz")


def test_corrupt_and_unknown_files(tmp_path):
    (tmp_path / "c.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(SchemaError, match="not a readable HDF5 file"):
        read_dataset(tmp_path / "c.h5")
    with pytest.raises(SchemaError, match="unknown data file type"):
        read_dataset(tmp_path / "x.csv")
    with pytest.raises(SchemaError, match="needs a schema"):
        read_dataset(tmp_path / "x.root")
