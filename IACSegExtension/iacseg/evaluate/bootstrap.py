"""Interval statistics over cases: percentile-bootstrap confidence intervals and Bland–Altman limits of agreement.

Pure numpy. A "case value" is one number per evaluated case (Dice, precision, recall, volume difference in
mm³, …); cases without a value (None/NaN) are left out and counted.

Bootstrap (percentile method, as in Jin et al.'s tables: 1,000 resamples): with
``rng = numpy.random.default_rng(seed)``, the resampled case indices are ``rng.integers(0, n, (n_resamples, n))``
(one row per resample, drawn with replacement); the statistic (default: the mean) of each row forms the bootstrap
distribution, and the interval is its ``(1 − confidence)/2`` and ``(1 + confidence)/2`` percentiles
(``numpy.percentile``, linear interpolation). The same seed gives the same interval.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

#: Per-case metrics that `metric_intervals` gives intervals for by default (keys of the case records).
INTERVAL_METRICS: tuple[str, ...] = ("dice", "precision", "recall", "volume_difference_mm3",
                                     "abs_volume_difference_mm3")


def _finite(values: Iterable[Any]) -> np.ndarray:
    """The values that are numbers (None and NaN dropped), as float64."""
    out = [float(v) for v in values if v is not None]
    arr = np.asarray(out, dtype=np.float64)
    return arr[np.isfinite(arr)]


def bootstrap_ci(values: Sequence[float | None], n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                 statistic: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, Any]:
    """Percentile-bootstrap confidence interval of ``statistic`` (default: the mean) over cases.

    ``statistic`` receives a ``(n_resamples, n)`` array and returns one value per row (``axis=1``).
    Returns ``{"estimate", "ci_low", "ci_high", "n", "n_resamples", "confidence", "seed", "method"}`` in the
    values' units; the estimate is the statistic of the cases themselves. With no usable value the numbers are
    None; with one case the interval is that value.
    """
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be between 0 and 1")
    stat = statistic or (lambda a: np.mean(a, axis=1))
    x = _finite(values)
    record: dict[str, Any] = {"estimate": None, "ci_low": None, "ci_high": None, "n": int(x.size),
                              "n_resamples": int(n_resamples), "confidence": float(confidence), "seed": int(seed),
                              "method": "percentile bootstrap over cases"}
    if x.size == 0:
        return record
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    dist = np.asarray(stat(x[idx]), dtype=np.float64)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(dist, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    estimate = float(np.asarray(stat(x[None, :])).reshape(-1)[0])
    record.update(estimate=estimate, ci_low=float(low), ci_high=float(high))
    return record


def metric_intervals(cases: Sequence[Mapping[str, Any]], metrics: Sequence[str] = INTERVAL_METRICS,
                     n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, dict[str, Any]]:
    """``{metric: bootstrap_ci of its mean}`` over the evaluated cases (``status == "ok"`` or no status).

    Every metric uses the same seed, so when every case has every metric their resamples pick the same cases.
    """
    ok = [c for c in cases if c.get("status", "ok") == "ok"]
    return {m: bootstrap_ci([c.get(m) for c in ok], n_resamples=n_resamples, confidence=confidence, seed=seed)
            for m in metrics}


def bland_altman(pred: Sequence[float], truth: Sequence[float], z: float = 1.96) -> dict[str, Any]:
    """Bland–Altman agreement of predicted and true volumes (mm³), paired by position.

    Differences are prediction − truth. Returns ``{"n", "mean_difference", "sd_difference" (sample SD, ddof 1),
    "lower_limit", "upper_limit"}`` (limits = mean ∓ ``z`` × SD; the 95 % limits of agreement for z = 1.96),
    plus ``"mean_of_pair"`` and ``"difference"`` per case for plotting. Fewer than 2 pairs → SD and limits None.
    """
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if p.shape != t.shape or p.ndim != 1:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} must be equally long 1D sequences")
    d = p - t
    n = int(d.size)
    mean = float(d.mean()) if n else None
    sd = float(d.std(ddof=1)) if n >= 2 else None
    return {"n": n, "mean_difference": mean, "sd_difference": sd,
            "lower_limit": None if sd is None else mean - z * sd,
            "upper_limit": None if sd is None else mean + z * sd, "z": float(z),
            "mean_of_pair": ((p + t) / 2.0).tolist(), "difference": d.tolist()}
