"""Stock hls4ml 1.3 on the field's peer models (shared/peer-models): convert -> compile -> C simulation,
compared with each model's own framework reference (the stock half of tools/bench_peers.py; its
figures of 2026-11 are in the project's peer-model notes, section 3).

    python stock_hls4ml.py PEER_DIR [--only a,b] [--granularity name|model] [--out DIR] [--json FILE]

"Stock" = hls4ml's documented default flow, nothing tuned:
- Keras 2 json + h5 / full h5 (float, QKeras, HGQ v1 proxy): hls4ml's Keras-v2 file path
  (`keras_v2_to_hls` with `KerasJson`/`KerasH5`; Keras 3 cannot rebuild these files as models), with the
  config of `config_from_keras_model(granularity=...)` computed on the same parsed layer list,
  default precision fixed<16,6>, ReuseFactor 1, Latency, and `BitExact` left at None (auto: on when
  the model contains FixedPointQuantizer layers), as `convert_from_keras_model` does.
- ONNX / QONNX: qonnx cleanup -> ConvertToChannelsLastAndClean -> GemmToMatMul -> cleanup (as hls4ml's
  QONNX docs require), `config_from_onnx_model(granularity=..., default_precision='fixed<16,6>')`,
  `convert_from_onnx_model`.
- Backend Vitis, io_parallel (the project's benchmark convention, tools/bench_*.py).

`run_peer(entry, peer_dir, work)` takes one manifest.json entry and returns a dict of figures, so a
benchmark can import it. The script prints one line per model and a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import numpy as np

# Models whose framework is fixed point end to end (check.py's EXACT set).
EXACT = {"qk_po2_relu", "hgq_mnist_homogeneous", "TFC_1W2A_int"}


def _family(entry: dict) -> tuple[str, Path | None, Path | None]:
    files = entry["files"]
    main = next(f for f in files if f.endswith((".onnx", ".json", ".h5")))
    if main.endswith(".onnx"):
        return "onnx", Path(main), None
    if main.endswith(".json"):
        return "keras_json", Path(main), Path(next(f for f in files if f.endswith("_weights.h5")))
    return "keras_h5", Path(main), None


def _keras_v2_model(
    arch_path: Path,
    h5_path: Path,
    full_h5: bool,
    out: Path,
    backend: str,
    io_type: str,
    granularity: str,
):
    import h5py
    import hls4ml
    from hls4ml.converters import KerasFileReader, keras_v2_to_hls

    if full_h5:
        with h5py.File(h5_path, "r") as f:
            arch = f.attrs["model_config"]
            arch = json.loads(arch.decode() if isinstance(arch, bytes) else arch)
    else:
        arch = json.loads(Path(arch_path).read_text())
    config = hls4ml.utils.config.create_config(
        output_dir=str(out), project_name="myproject", backend=backend, io_type=io_type
    )
    config["KerasH5"] = str(h5_path)
    if not full_h5:
        config["KerasJson"] = str(arch_path)
    # config_from_keras_model accepts a Keras-2 architecture dict but reads weights through
    # KerasModelReader(dict); give it the file reader instead (same parse as the conversion).
    orig = hls4ml.converters.KerasModelReader
    hls4ml.converters.KerasModelReader = lambda _m: KerasFileReader({"KerasH5": str(h5_path)})
    try:
        hls_config = hls4ml.utils.config_from_keras_model(
            arch, granularity=granularity, backend=backend, default_precision="fixed<16,6>"
        )
    finally:
        hls4ml.converters.KerasModelReader = orig
    hls_config["Model"]["BitExact"] = None  # as convert_from_keras_model(bit_exact=None)
    config["HLSConfig"] = hls_config
    return keras_v2_to_hls(config)


def _onnx_model(path: Path, out: Path, backend: str, io_type: str, granularity: str):
    import hls4ml
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    mw = cleanup_model(ModelWrapper(str(path)))
    mw = mw.transform(ConvertToChannelsLastAndClean())
    mw = mw.transform(GemmToMatMul())
    mw = cleanup_model(mw)
    cfg = hls4ml.utils.config.config_from_onnx_model(
        mw, granularity=granularity, backend=backend, default_precision="fixed<16,6>"
    )
    hm = hls4ml.converters.convert_from_onnx_model(
        mw, output_dir=str(out), io_type=io_type, backend=backend, hls_config=cfg
    )
    in_shape = [d.dim_value for d in mw.graph.input[0].type.tensor_type.shape.dim]
    return hm, in_shape


def _fit_input(x: np.ndarray, in_shape: list[int] | None) -> np.ndarray:
    """Reference x is batch-first in the file's own layout; after qonnx's channels-last conversion an
    NCHW input becomes NHWC: transpose when that is what the converted graph expects."""
    if not in_shape or list(x.shape[1:]) == list(in_shape[1:]):
        return x
    if x.ndim >= 3 and list(np.moveaxis(x, 1, -1).shape[1:]) == list(in_shape[1:]):
        return np.ascontiguousarray(np.moveaxis(x, 1, -1))
    return x.reshape((len(x),) + tuple(in_shape[1:]))


def _child_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def compare(got: np.ndarray, y: np.ndarray) -> dict:
    """Figures of got against the reference y (both reshaped to (n, -1))."""
    got = np.asarray(got, np.float64).reshape(len(y), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    span = float(np.ptp(y)) or 1.0
    if y.shape[1] > 1:
        agree = float(np.mean(got.argmax(1) == y.argmax(1)))
    else:
        mid = 0.5 * (y.max() + y.min())
        agree = float(np.mean((got > mid) == (y > mid)))
    return {
        "exact_elements": float(np.mean(got == y)),
        "exact_rows": float(np.mean(np.all(got == y, axis=1))),
        "max_abs_err": float(np.abs(got - y).max()),
        "max_err_over_range": float(np.abs(got - y).max()) / span,
        "argmax_agree": agree,
    }


def run_peer(
    entry: dict,
    peer_dir: Path,
    work: Path,
    backend: str = "Vitis",
    io_type: str = "io_parallel",
    granularity: str = "name",
    verbose: bool = False,
) -> dict:
    """Stock hls4ml on one peer model (a manifest.json entry). Returns a dict of figures; on failure
    `status` is 'fail:<stage>' and `error` holds the last line of the exception."""
    name = entry["name"]
    fam, main, weights = _family(entry)
    ref = np.load(peer_dir / entry["reference"])
    x, y = ref["x"], ref["y"]
    res = {
        "name": name,
        "family": fam,
        "exact_expected": name in EXACT,
        "granularity": granularity,
        "backend": backend,
        "io_type": io_type,
        "n": len(x),
    }
    out = work / name
    sink = io.StringIO()
    stage = "convert"
    try:
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sink if not verbose else sys.stdout):
            if fam == "onnx":
                hm, in_shape = _onnx_model(peer_dir / main, out, backend, io_type, granularity)
            else:
                hm = _keras_v2_model(
                    peer_dir / main,
                    peer_dir / (weights or main),
                    fam == "keras_h5",
                    out,
                    backend,
                    io_type,
                    granularity,
                )
                in_shape = None
            res["t_convert"] = time.perf_counter() - t0
            stage = "compile"
            t0, c0 = time.perf_counter(), _child_cpu()
            hm.compile()
            res["t_compile"] = time.perf_counter() - t0
            res["cpu_compile"] = _child_cpu() - c0  # g++ CPU seconds (wall time depends on machine load)
            stage = "predict"
            xin = _fit_input(x, in_shape).astype(np.float32)
            t0 = time.perf_counter()
            got = hm.predict(xin)
            res["t_predict"] = time.perf_counter() - t0
        res["input_shape_used"] = list(xin.shape[1:])
        res.update(compare(got, y))
        res["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - record, do not stop the benchmark
        last = (traceback.format_exception_only(type(exc), exc)[-1]).strip()
        res["status"] = f"fail:{stage}"
        res["error"] = (_why(exc) or last)[:300]
        if verbose:
            traceback.print_exc()
    return res


def _why(exc: BaseException) -> str | None:
    """A known cause in words: hls4ml's QKeras parser hands the file's quantizer config (a dict) to
    `qkeras.get_quantizer`, which in this stack is hgq2's module (Google QKeras needs Keras 2 and is
    not installed) and reads strings only."""
    frames = [f.filename for f in traceback.extract_tb(exc.__traceback__)]
    if isinstance(exc, AttributeError) and any("/qkeras/" in f for f in frames):
        return "needs Google QKeras (hls4ml's QKeras parser; hgq2's qkeras module reads quantizer strings only)"
    return None


def hide_module(name: str) -> None:
    """Make `import name` raise ModuleNotFoundError in this process."""
    import importlib.abc

    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            if fullname == name or fullname.startswith(name + "."):
                raise ModuleNotFoundError(f"No module named '{fullname}'")

    for k in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[k]
    sys.meta_path.insert(0, _Block())


def line(r: dict) -> str:
    if r["status"] != "ok":
        return f"{r['name']:36s} {r['status']} {r.get('error', '')}"
    return (
        f"{r['name']:36s} exact {r['exact_elements']:.4f} (rows {r['exact_rows']:.3f})  "
        f"max_err/range {r['max_err_over_range']:.4f}  argmax {r['argmax_agree']:.3f}  "
        f"t convert/compile/predict {r['t_convert']:.1f}/{r['t_compile']:.1f}/{r['t_predict']:.2f} s"
        f" (g++ cpu {r.get('cpu_compile', float('nan')):.1f} s)"
    )


def markdown_table(head: list[str], body: list[list[str]]) -> str:
    """A Markdown table: the header row, the rule, one line per row of cells."""
    lines = [head, ["---"] * len(head), *body]
    return "".join("| " + " | ".join(cells) + " |\n" for cells in lines)


def table(rows: list[dict]) -> str:
    head = [
        "model",
        "status",
        "exact elems (rows)",
        "max err / range(y)",
        "argmax agree",
        "convert s",
        "compile s (g++ cpu)",
        "predict s",
    ]
    body = []
    for r in rows:
        if r["status"] == "ok":
            cells = [
                r["name"],
                "ok",
                f"{r['exact_elements']:.4f} ({r['exact_rows']:.3f})",
                f"{r['max_err_over_range']:.4f}",
                f"{r['argmax_agree']:.3f}",
                f"{r['t_convert']:.1f}",
                f"{r['t_compile']:.1f} ({r.get('cpu_compile', float('nan')):.0f})",
                f"{r['t_predict']:.2f}",
            ]
        else:
            cells = [
                r["name"],
                r["status"] + ": " + r.get("error", "")[:120],
                "-",
                "-",
                "-",
                f"{r.get('t_convert', float('nan')):.1f}" if "t_convert" in r else "-",
                "-",
                "-",
            ]
        body.append(cells)
    return markdown_table(head, body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("peer_dir", type=Path)
    ap.add_argument("--only")
    ap.add_argument("--granularity", default="name")
    ap.add_argument("--backend", default="Vitis")
    ap.add_argument("--out", type=Path, help="work here (default: a new temporary directory)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument(
        "--hide-qkeras",
        action="store_true",
        help="make `import qkeras` fail (hgq2 ships a `qkeras` shim; this shows hls4ml without any qkeras)",
    )
    a = ap.parse_args()
    if a.hide_qkeras:
        hide_module("qkeras")
    if a.out is None:
        import tempfile

        a.out = Path(tempfile.mkdtemp(prefix="stock-hls4ml-"))
    man = json.loads((a.peer_dir / "manifest.json").read_text())
    only = set(a.only.split(",")) if a.only else None
    rows = []
    for entry in man:
        if only and entry["name"] not in only:
            continue
        r = run_peer(
            entry,
            a.peer_dir,
            a.out / a.granularity,
            backend=a.backend,
            granularity=a.granularity,
            verbose=a.verbose,
        )
        rows.append(r)
        print(line(r), flush=True)
        if a.json:
            a.json.write_text(json.dumps(rows, indent=1))
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
