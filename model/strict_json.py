"""JSON that every parser reads: NaN and infinities become null.

Python's json writes NaN as a bare `NaN`, which strict JSON (RFC 8259, JavaScript's JSON.parse,
jq) refuses. A metric that is undefined (ROC-AUC over one class, a PSI over an empty window) is
written as null instead.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(obj: Any) -> Any:
    """`obj` with every non-finite float (numpy's too) replaced by None, recursively."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    if isinstance(obj, float) or type(obj).__name__.startswith("float"):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    kwargs.setdefault("ensure_ascii", False)
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
