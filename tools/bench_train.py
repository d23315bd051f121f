"""Training wall time per reference model on the default data (issue 3 target: all three
under 6 minutes together on 2 cores), with the physics figures of each run.

    python tools/bench_train.py [--events 200000] [--out runs/bench]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--models", default="eg_mlp,eg_cnn,ad_autoencoder")
    ap.add_argument("--out", type=Path, default=Path("runs/bench"))
    args = ap.parse_args()
    from trigger_ml.config import load_card
    from trigger_ml.data import simulate_dataset
    from trigger_ml.train.fit import train

    root = Path(__file__).resolve().parent.parent
    t0 = time.perf_counter()
    ds = simulate_dataset(args.events, seed=args.seed)
    print(f"data: {args.events:,} windows simulated in {time.perf_counter() - t0:.1f} s")
    total = 0.0
    for name in args.models.split(","):
        card = load_card(root / "models" / f"{name}.yaml")
        t = time.perf_counter()
        m = train(card, ds, args.out / name)
        dt = time.perf_counter() - t
        total += dt
        q, f = m["quantized"], m["float"]
        if card.task == "classifier":
            summary = (
                f"AUC q {q['auc']:.4f} f {f['auc']:.4f} (loss {f['auc'] - q['auc']:+.4f}); eff at baseline "
                f"fake rate {q['baseline_fake_rate']:.4f}: q {q['efficiency_at_baseline_fake_rate']:.4f} "
                f"vs baseline {q['baseline_efficiency']:.4f}"
            )
        else:
            summary = "; ".join(
                f"{c} AUC q {v['auc']:.4f} f {f['per_class'][c]['auc']:.4f} "
                f"TPR@1e-3 {v['tpr_at_fpr_1e-3']:.3f} TPR@1e-4 {v['tpr_at_fpr_1e-4']:.3f}"
                for c, v in q["per_class"].items()
            )
        print(
            f"{name}: {dt:.1f} s (float {m['timings_s']['float_s']:.1f} s, QAT {m['timings_s']['quantized_s']:.1f} s,"
            f" epochs {m['epochs_run']}); sparsity {json.dumps({k: round(v, 3) for k, v in m['sparsity'].items()})}"
        )
        print(f"  {summary}")
    print(f"total training wall time: {total:.1f} s (target <= 360 s: ratio {total / 360:.2f})")


if __name__ == "__main__":
    main()
