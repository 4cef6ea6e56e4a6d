#!/usr/bin/env bash
# Device check (not part of CI): the full oracle on CUDA, every torch mode, float64/float32, orders 1 and 2.
python3 --version
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
for m in sympy hypothesis pandas numpy mpmath flint; do python3 -c "import $m; print('$m', getattr($m, '__version__', '?'))" 2>&1 | tail -1; done
export PYTHONPATH=.:.venv/lib/python3.11/site-packages
python3 - <<'PY'
import time
from harness import TorchEngine, check_engine
for mode in ("reverse", "forward", "functional"):
    t = time.time()
    r = check_engine(TorchEngine(mode, device="cuda"), n_examples=100, seed=1,
                     dtypes=("float64", "float32"), orders=(1, 2))
    print(mode, "ok" if r.ok else "FAIL", r.examples, "entries", len(r.frame), f"{time.time()-t:.1f}s")
    if not r.ok:
        print(r.report()[:3000])
PY
