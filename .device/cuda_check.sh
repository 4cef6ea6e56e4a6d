#!/usr/bin/env bash
# Device check (not part of CI): the full oracle on CUDA, every torch mode, float64/float32, orders 1 and 2.
# Run from the repository root on a machine with a GPU: bash .device/cuda_check.sh
python3 --version
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
for m in sympy hypothesis pandas numpy mpmath flint; do python3 -c "import $m; print('$m', getattr($m, '__version__', '?'))" 2>&1 | tail -1; done
export PYTHONPATH=.:.venv/lib/python3.11/site-packages
python3 - <<'PY'
# Every torch mode (eager, torch.func transforms, torch.compile) as torch:<mode>@cuda, each
# checked against the truth and against its eager mode on the same GPU (vs_eager).
import sys, time
from harness import check_engine
from harness.engines import engine_from_spec
from harness.engines.torch_ad import MODES
failed = []
for mode in MODES:
    t = time.time()
    engine = engine_from_spec(f"torch:{mode}@cuda")
    orders = (2,) if mode == "hessian" else (1, 2)
    r = check_engine(engine, n_examples=engine.default_examples or 100, seed=1,
                     dtypes=("float64", "float32"), orders=orders)
    differs = int((r.frame["vs_eager"] == "differs").sum())
    print(engine.name, "ok" if r.ok else "FAIL", r.examples, "entries", len(r.frame),
          "differs_from_eager", differs, f"{time.time()-t:.1f}s", flush=True)
    if not r.ok:
        failed.append(engine.name)
        print(r.report()[:3000])
sys.exit(1 if failed else 0)
PY
