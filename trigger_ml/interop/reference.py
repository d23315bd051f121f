"""The foreign model's own reference semantics, as one more `predict(x) -> np.ndarray` level.

- QONNX: qonnx's reference executor (`qonnx.core.onnx_exec.execute_onnx`), node by node, in
  float32 like the exporters (Brevitas) and FINN. The lowered Keras model must equal it exactly.
- float ONNX: onnxruntime (float32); the lowered fixed-point model is compared within a tolerance
  and by argmax agreement, labelled fidelity.

Files (an imported run's `foreign/`, kept by compile as `reference/foreign/`):
`model.onnx` (normalised: IR version and opset capped, see `onnx_load.normalise`), `info.json`
(kind, reference, check, tolerances, import figures), `inputs.npy` and `outputs.npy` (the
reference's outputs on the import's test vectors).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from trigger_ml.layout import ForeignDir

BATCH = 4096


def data_inputs(model) -> list:
    """The graph inputs that are not initializers (IR < 4 files list their weights as inputs)."""
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def input_shape(model) -> tuple[int, ...]:
    """The first data input's shape without the batch axis, in the file's own layout (e.g. C, H, W)."""
    dims = data_inputs(model)[0].type.tensor_type.shape.dim
    return tuple(int(d.dim_value) for d in dims[1:])


def _with_batch(model, n: int):
    """A copy of the model with batch size n on its input and output (qonnx needs static shapes)."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    m = onnx.ModelProto.FromString(model.SerializeToString())
    for vi in data_inputs(m) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            dims[0].ClearField("dim_param")
            dims[0].dim_value = n
    del m.graph.value_info[:]
    _batch_reshapes(m)
    return ModelWrapper(m).transform(InferShapes())


def _batch_reshapes(m) -> None:
    """Exports reshape (1, ...) -> (1, -1) with a constant shape: make it (0, -1) (0 keeps the batch)."""
    from onnx import numpy_helper

    inits = {t.name: t for t in m.graph.initializer}
    for node in m.graph.node:
        if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in inits:
            shape = numpy_helper.to_array(inits[node.input[1]])
            if shape.shape == (2,) and shape[0] == 1:
                name = f"{node.input[1]}__batch_{node.name or node.output[0]}"
                m.graph.initializer.append(numpy_helper.from_array(np.array([0, -1], np.int64), name))
                node.input[1] = name


class _Batched:
    """predict(x) over batches of the file's input shape: x in the file's layout (NCHW for an image
    file) or flattened; outputs flattened, one row per event (several outputs side by side). Files
    that only run one event at a time (Flatten axis=0, a hard-coded batch) are detected on the first
    call (two events batched vs one by one) and then run event by event."""

    name = "onnx"

    def __init__(self, model) -> None:
        self.model = model
        self.shape = input_shape(model)
        self.single: bool | None = None

    def _run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32).reshape(len(x), *self.shape)
        if self.single is None and len(x) > 1:
            one = np.concatenate([self._run(x[j : j + 1]) for j in range(2)])
            try:
                self.single = not np.array_equal(self._run(x[:2]), one)
            except Exception:  # noqa: BLE001 - a file that cannot batch runs event by event
                self.single = True
        if self.single:
            outs = [self._run(x[j : j + 1]) for j in range(len(x))]
        else:
            outs = [self._run(x[s : s + BATCH]) for s in range(0, len(x), BATCH)]
        return np.concatenate(outs) if outs else np.zeros((0, 0))


class QonnxExecutor(_Batched):
    """qonnx's executor on a batch (float32 in, float64 out)."""

    name = "qonnx"

    def __init__(self, model) -> None:
        super().__init__(model)
        self._by_n: dict[int, Any] = {}

    def _run(self, x: np.ndarray) -> np.ndarray:
        import warnings

        from qonnx.core.onnx_exec import execute_onnx

        if len(x) not in self._by_n:
            self._by_n[len(x)] = _with_batch(self.model, len(x))
        mw = self._by_n[len(x)]
        with warnings.catch_warnings():  # shapes qonnx could not infer (a Shape/Reshape chain) are found at run time
            warnings.simplefilter("ignore", UserWarning)
            res = execute_onnx(mw, {data_inputs(mw.model)[0].name: x})
        return np.concatenate(
            [np.asarray(res[o.name], np.float64).reshape(len(x), -1) for o in mw.graph.output], axis=1
        )


def _symbolic_batch(model):
    """A copy with a free batch dimension on the input and output (exports often fix it to 1)."""
    import onnx

    m = onnx.ModelProto.FromString(model.SerializeToString())
    for vi in data_inputs(m) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            dims[0].dim_param = "N"
    del m.graph.value_info[:]
    _batch_reshapes(m)
    return m


class OrtSession(_Batched):
    """onnxruntime on a batch (float32 in, float64 out)."""

    name = "onnxruntime"
    exact = False  # float32 arithmetic of a float model: compared by fidelity

    def __init__(self, model) -> None:
        import onnxruntime as ort

        super().__init__(model)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        opts.log_severity_level = 4  # a file that cannot batch is found by predict, not logged
        self.sess = ort.InferenceSession(
            _symbolic_batch(model).SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
        self.input = data_inputs(model)[0].name

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [np.asarray(y, np.float64).reshape(len(x), -1) for y in self.sess.run(None, {self.input: x})], axis=1
        )


def load(folder: ForeignDir):
    """The reference level of a `foreign/` folder, and its info."""
    import onnx

    info = json.loads(folder.info.read_text())
    model = onnx.load(folder.file(info["file"]))
    return (QonnxExecutor(model) if info["reference"] == "qonnx" else OrtSession(model)), info


class UserLayout:
    """A level that takes the user's input layout, given model-layout (channels-last) inputs."""

    def __init__(self, level, layout: dict[str, Any]) -> None:
        self.level, self.layout = level, layout
        self.name = getattr(level, "name", "foreign")

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x).reshape(len(x), *self.layout["shape"])
        perm = self.layout.get("perm")
        if perm:
            x = np.transpose(x, (0, *[list(perm).index(j) + 1 for j in range(len(perm))]))
        return np.asarray(self.level.predict(x), np.float64).reshape(len(x), -1)


FOREIGN_EXECUTORS = {"qonnx": QonnxExecutor, "onnxruntime": OrtSession}


def load_levels(folder: ForeignDir) -> tuple[list[tuple[str, Any, str]], dict[str, Any]]:
    """Every reference level of an imported run's `foreign/` folder as (name, level, check) with
    check "exact" or "fidelity", and its info. Runs imported through `imported.import_graph`
    have the post-policy graph (`import`), the source graph (`source`) and the foreign executor;
    older runs their one ONNX reference."""
    from trigger_ml.interop.ir import GraphLevel
    from trigger_ml.interop.ir import load as load_graph

    info = json.loads(folder.info.read_text())
    if "levels" not in info:
        level, info = load(folder)
        return [(info["reference"], level, info["check"])], info
    out = []
    for lv in info["levels"]:
        if lv["kind"] == "graph":
            out.append((lv["name"], GraphLevel(load_graph(folder.root / lv["graph"]), lv["name"]), lv["check"]))
        elif lv["name"] in FOREIGN_EXECUTORS and "file" in info:
            import onnx

            model = onnx.load(folder.file(info["file"]))
            out.append((lv["name"], UserLayout(FOREIGN_EXECUTORS[lv["name"]](model), info["input"]), lv["check"]))
    return out, info


def fidelity(y_fixed: np.ndarray, y_float: np.ndarray) -> dict[str, float]:
    """Fidelity figures (not exactness): the largest error relative to the float output range,
    and the fraction of events whose argmax agrees (one output: the side of the midpoint of the
    reference's range, as a threshold would cut it: 0 for a symmetric output, 0.5 for a sigmoid's)."""
    scale = max(float(np.max(np.abs(y_float))), 1e-30)
    rel = float(np.max(np.abs(y_fixed - y_float))) / scale if y_float.size else 0.0
    if y_float.shape[1] > 1:
        agree = float(np.mean(np.argmax(y_fixed, 1) == np.argmax(y_float, 1)))
    else:
        mid = 0.5 * (float(y_float.max()) + float(y_float.min())) if y_float.size else 0.0
        agree = float(np.mean((y_fixed[:, 0] > mid) == (y_float[:, 0] > mid)))
    return {"max_rel_error": rel, "argmax_agreement": agree}
