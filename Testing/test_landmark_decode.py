"""Joint landmark decoding: whatever the network says, the six landmarks come out in anatomical order, with gaps
an anatomy allows, left and right consistent, and a landmark outside a partial scan can be placed outside it."""

from __future__ import annotations

import numpy as np
import pytest

from iacseg.core.anatomy import LANDMARK_GAPS_MM, LANDMARK_LR_TOLERANCE_MM, expected_left_minus_right_mm
from iacseg.core.contracts import LANDMARK_KINDS, LANDMARKS, SIDES
from iacseg.mapping import check_landmark_order
from iacseg.models.landmark_decode import candidate_range, decode_landmarks, network_log_likelihood


def _peaks(centres: dict[str, float], n: int, width: float = 0.8) -> dict[str, np.ndarray]:
    x = np.arange(n)
    out = {}
    for name, c in centres.items():
        p = np.exp(-0.5 * ((x - c) / width) ** 2)
        out[name] = p / p.sum()
    return out


def _decode(probs: dict[str, np.ndarray], n: int, sk: float, roll: float = 0.0, prior=None, z0: float = -40.0):
    k_first, K = candidate_range(n, sk)
    ll = {name: network_log_likelihood(p, 0, k_first, K) for name, p in probs.items()}
    return decode_landmarks(ll, k_first, n, z0, sk, roll_deg=roll, prior=prior)


def _check_anatomy(result, sk: float, roll: float = 0.0) -> None:
    z = {n: d.z_mm for n, d in result.landmarks.items()}
    check_landmark_order(z)  # raises if out of order
    for side in SIDES:
        for lo, hi in zip(LANDMARK_KINDS, LANDMARK_KINDS[1:]):
            gap = z[f"{side}_{hi}"] - z[f"{side}_{lo}"]
            g_min, g_max = LANDMARK_GAPS_MM[(lo, hi)]
            assert g_min - sk <= gap <= g_max + 1e-6
    for kind in LANDMARK_KINDS:
        d = z[f"L_{kind}"] - z[f"R_{kind}"] - expected_left_minus_right_mm(kind, roll)
        assert abs(d) <= 2 * LANDMARK_LR_TOLERANCE_MM + 1e-6
    for d in result.landmarks.values():
        assert 0.0 <= d.confidence <= 1.0 + 1e-9


def test_a_consistent_confident_network_is_decoded_unchanged():
    centres = {"L_carotid_canal": 20, "L_petrolingual": 26, "L_anterior_clinoid": 31,
               "R_carotid_canal": 19, "R_petrolingual": 26, "R_anterior_clinoid": 31}
    result = _decode(_peaks(centres, 60), 60, 2.5)
    assert {n: d.slice for n, d in result.landmarks.items()} == centres
    assert all(d.confidence > 0.9 and d.in_scan for d in result.landmarks.values())


def test_a_canal_predicted_above_its_petrolingual_is_put_back_in_order_from_the_other_side():
    centres = {"L_carotid_canal": 40, "L_petrolingual": 25, "L_anterior_clinoid": 30,
               "R_carotid_canal": 20, "R_petrolingual": 26, "R_anterior_clinoid": 31}
    result = _decode(_peaks(centres, 60), 60, 2.5)
    _check_anatomy(result, 2.5)
    assert abs(result.landmarks["L_carotid_canal"].slice - 20) <= 2  # follows the right side, not its wrong peak


@pytest.mark.parametrize("sk", [0.625, 2.5, 7.0])
def test_any_network_output_decodes_to_a_valid_anatomy(sk):
    rng = np.random.default_rng(int(sk * 100))
    n = int(150 / sk)
    for _ in range(15):
        probs = {name: rng.dirichlet(np.full(n, rng.choice([0.05, 1.0]))) for name in LANDMARKS}
        roll = float(rng.uniform(-12, 12))
        _check_anatomy(_decode(probs, n, sk, roll=roll), sk, roll)


def test_the_head_roll_sets_the_expected_left_right_offset():
    n, sk, roll = 80, 1.0, 10.0
    shift = expected_left_minus_right_mm("carotid_canal", roll)  # ≈ 9.4 mm: left higher
    centres = {"L_carotid_canal": 20 + shift, "L_petrolingual": 36 + 6, "L_anterior_clinoid": 50 + 6,
               "R_carotid_canal": 20, "R_petrolingual": 36, "R_anterior_clinoid": 50}
    result = _decode(_peaks(centres, n), n, sk, roll=roll)
    assert result.landmarks["L_carotid_canal"].slice == round(20 + shift)


def test_a_landmark_below_a_partial_scan_is_placed_below_it():
    # the scan starts at the petrolingual level: the network finds no carotid canal (a flat distribution)
    n, sk = 40, 2.5
    centres = {"L_petrolingual": 2, "L_anterior_clinoid": 8, "R_petrolingual": 2, "R_anterior_clinoid": 8}
    probs = {**_peaks(centres, n), "L_carotid_canal": np.full(n, 1.0 / n), "R_carotid_canal": np.full(n, 1.0 / n)}
    prior = {f"{s}_{k}": (z, 5.0) for s in SIDES for k, z in
             (("carotid_canal", -40.0 + 2 * sk - 15.0), ("petrolingual", -40 + 1.5 * sk), ("anterior_clinoid", -20.0))}
    result = _decode(probs, n, sk, prior=prior)
    _check_anatomy(result, sk)
    canal = result.landmarks["L_carotid_canal"]
    assert canal.slice < 0 and not canal.in_scan
    assert result.landmarks["L_petrolingual"].in_scan


def test_an_unsure_network_follows_the_bone_prior():
    n, sk = 60, 2.5
    flat = {name: np.full(n, 1.0 / n) for name in LANDMARKS}
    prior_z = {"carotid_canal": 5.0, "petrolingual": 20.0, "anterior_clinoid": 33.0}
    prior = {f"{s}_{k}": (z, 4.0) for s in SIDES for k, z in prior_z.items()}
    result = _decode(flat, n, sk, prior=prior)
    for s in SIDES:
        for k, z in prior_z.items():
            assert abs(result.landmarks[f"{s}_{k}"].z_mm - z) <= sk
