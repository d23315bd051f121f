"""Import -> compile -> verify of the small (Q)ONNX models of tests/interop, timed, and hls4ml 1.3's
own QONNX frontend on the same QONNX graphs for comparison (its C simulation against qonnx's
executor on the same fuzzed inputs).

    python tools/bench_interop.py [--keep DIR] [--no-hls4ml]

Prints a Markdown table: per model, seconds per step, exact-check counts per level, fidelity
figures (float ONNX), and hls4ml's QONNX frontend mismatches. Runs in a temporary directory with
an empty trigger-ml cache.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def hls4ml_frontend(model, x, out: Path) -> str:
    """Mismatches of hls4ml's QONNX frontend (default precision fixed<16,6>) against qonnx's executor."""
    import hls4ml
    import numpy as np
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    from trigger_ml.interop.reference import QonnxExecutor

    try:
        mw = cleanup_model(ModelWrapper(model)).transform(ConvertToChannelsLastAndClean()).transform(GemmToMatMul())
        mw = cleanup_model(mw)
        cfg = hls4ml.utils.config.config_from_onnx_model(
            mw, granularity="name", backend="Vitis", default_precision="fixed<16,6>"
        )
        hm = hls4ml.converters.convert_from_onnx_model(
            mw, output_dir=str(out), io_type="io_parallel", backend="Vitis", hls_config=cfg
        )
        hm.compile()
        y = np.asarray(hm.predict(x.astype(np.float32)), np.float64).reshape(len(x), -1)
    except Exception as exc:  # report, do not stop the benchmark
        return f"failed: {type(exc).__name__}"
    bad = int(np.any(y != QonnxExecutor(model).predict(x), axis=1).sum())
    return f"{bad}/{len(x)} differ"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=Path, help="work here and keep the outputs")
    ap.add_argument("--no-hls4ml", action="store_true", help="skip hls4ml's QONNX frontend comparison")
    args = ap.parse_args()
    import json

    import numpy as np
    import onnx

    from tests.interop import models as M
    from trigger_ml.compile import Options, compile_run
    from trigger_ml.interop import import_model
    from trigger_ml.interop.onnx_load import normalise
    from trigger_ml.verify.run import verify_firmware

    work = args.keep or Path(tempfile.mkdtemp(prefix="tml-bench-interop-"))
    os.environ["TRIGGER_ML_CACHE"] = str(work / "cache")
    models = {
        "qonnx 2-bit MLP": M.qonnx_mlp_2bit(),
        "qonnx bipolar": M.qonnx_bipolar(),
        "qonnx trunc v2": M.qonnx_trunc(2),
        "float ONNX MLP": M.float_mlp(),
    }
    rows = []
    for name, model in models.items():
        d = work / name.replace(" ", "_")
        d.mkdir(parents=True, exist_ok=True)
        onnx.save(model, d / "m.onnx")
        t = [time.perf_counter()]
        summary = import_model(d / "m.onnx", d / "run")
        t.append(time.perf_counter())
        res = compile_run(d / "run", d / "fw", Options())
        t.append(time.perf_counter())
        out = verify_firmware(d / "fw", None, n_fuzz=1000, rtl=True)
        t.append(time.perf_counter())
        exact = ", ".join(f"{r.level} {r.compared - r.mismatched}/{r.compared}" for r in out.exact)
        gates = ", ".join(f"{c.name.removeprefix('fidelity: ')} {c.value:.3g}" for c in out.gates)
        rtl = "yes" if res.manifest["rtl"]["written"] else "no (" + res.manifest["rtl"]["reason"][:40] + "...)"
        hls = "-"
        if summary["kind"] == "qonnx" and not args.no_hls4ml:
            x = np.load(d / "run" / "foreign" / "inputs.npy")
            hls = hls4ml_frontend(normalise(model)[0], x, d / "hls4ml_frontend")
        rows.append([name, f"{t[1] - t[0]:.1f} / {t[2] - t[1]:.1f} / {t[3] - t[2]:.1f}", exact, gates or "-", rtl, hls])
        (d / "bench.json").write_text(json.dumps(rows[-1]))
    head = [
        "model",
        "import / compile / verify s",
        "exact: matched/compared",
        "fidelity",
        "RTL",
        "hls4ml QONNX frontend",
    ]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\n(outputs in {work})")


if __name__ == "__main__":
    main()
