"""Agreement between model and readers (iacseg.store.agreement): known Dice, volume differences and landmark errors."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from store_fixtures import write_engine_output

from iacseg.core.contracts import LANDMARKS, SEGMENT_IDS, SEGMENTS
from iacseg.core.grid import Grid
from iacseg.core.landmarks import Landmark
from iacseg.store.agreement import (format_agreement, pair_agreement, store_agreement, summarise_rows,
                                    write_agreement_csv)

GRID = Grid((10, 12, 12), (0.5, 0.5, 2.0), (0.0, 0.0, 0.0))  # voxel 0.5 mm³; slice centres at z = 0, 2, 4, …
VOXEL = 0.5
HEIGHTS = {"L_carotid_canal": 3.0, "L_petrolingual": 7.0, "L_anterior_clinoid": 13.0,
           "R_carotid_canal": 3.5, "R_petrolingual": 7.5, "R_anterior_clinoid": 13.5}


def landmarks(heights: dict[str, float] = HEIGHTS) -> dict[str, Landmark]:
    return {n: Landmark(n, z, (10.0 if n.startswith("L") else -10.0, 0.0, z)) for n, z in heights.items()}


def base_labels() -> np.ndarray:
    """10 voxels of L_petrous, 6 of R_cervical, 5 of L_cavernous (a lesion a reader may reassign)."""
    lab = np.zeros(GRID.shape, np.uint8)
    lab[2, 1, 0:10] = SEGMENT_IDS["L_petrous"]
    lab[1, 5, 0:6] = SEGMENT_IDS["R_cervical"]
    lab[5, 8, 2:7] = SEGMENT_IDS["L_cavernous"]
    return lab


def test_added_voxels_in_one_segment_give_exact_dice_and_volume_difference() -> None:
    a = base_labels()
    b = a.copy()
    b[2, 2, 0:4] = SEGMENT_IDS["L_petrous"]  # the reader adds 4 voxels to L_petrous
    r = pair_agreement(a, b, GRID, landmarks(), landmarks())
    petrous = r["segments"]["L_petrous"]
    assert petrous["dice"] == pytest.approx(2 * 10 / (10 + 14))
    assert petrous["volume_a_mm3"] == pytest.approx(10 * VOXEL)
    assert petrous["volume_difference_mm3"] == pytest.approx(4 * VOXEL)  # b − a
    assert r["segments"]["R_cervical"] == {"dice": 1.0, "volume_a_mm3": 3.0, "volume_b_mm3": 3.0,
                                           "volume_difference_mm3": 0.0}
    assert r["segments"]["R_supraclinoid"]["dice"] == 1.0  # both empty: agreement, not NaN
    assert r["all"]["dice"] == pytest.approx(2 * 21 / (21 + 25))
    assert r["all"]["volume_difference_mm3"] == pytest.approx(2.0)
    assert list(r["segments"]) == list(SEGMENTS.values())
    json.dumps(r, allow_nan=False)  # no NaN anywhere


def test_reassigned_lesion_moves_volume_between_segments_but_not_the_calcium() -> None:
    a = base_labels()
    b = a.copy()
    b[a == SEGMENT_IDS["L_cavernous"]] = SEGMENT_IDS["L_supraclinoid"]
    r = pair_agreement(a, b, GRID, landmarks(), landmarks())
    assert r["segments"]["L_cavernous"]["dice"] == 0.0
    assert r["segments"]["L_cavernous"]["volume_difference_mm3"] == pytest.approx(-5 * VOXEL)
    assert r["segments"]["L_supraclinoid"]["volume_difference_mm3"] == pytest.approx(5 * VOXEL)
    assert r["all"]["dice"] == 1.0 and r["all"]["volume_difference_mm3"] == 0.0


def test_landmark_moved_by_2_5_mm_has_error_2_5_mm_and_one_slice() -> None:
    moved = dict(HEIGHTS, L_petrolingual=HEIGHTS["L_petrolingual"] + 2.5)  # 7.0 → 9.5: first slice above 8 → 10
    r = pair_agreement(base_labels(), base_labels(), GRID, landmarks(), landmarks(moved))
    assert r["landmarks"]["L_petrolingual"] == {"z_a_mm": 7.0, "z_b_mm": 9.5, "error_mm": 2.5, "error_slices": 1.0}
    assert r["landmarks"]["R_petrolingual"]["error_mm"] == 0.0
    assert r["landmark_mean_error_mm"] == pytest.approx(2.5 / 6)
    assert r["landmark_mean_error_slices"] == pytest.approx(1 / 6)
    assert list(r["landmarks"]) == list(LANDMARKS)
    assert r["landmarks_missing"] == []


def test_plane_heights_as_numbers_and_missing_landmarks() -> None:
    b = {n: z for n, z in HEIGHTS.items() if n != "R_anterior_clinoid"}
    b["L_carotid_canal"] = 1.0
    r = pair_agreement(base_labels(), base_labels(), GRID, HEIGHTS, b)
    assert r["landmarks_missing"] == ["R_anterior_clinoid"]
    assert "R_anterior_clinoid" not in r["landmarks"]
    assert r["landmarks"]["L_carotid_canal"]["error_mm"] == 2.0
    assert r["landmark_mean_error_mm"] == pytest.approx(2.0 / 5)


def test_label_maps_on_other_grids_are_refused() -> None:
    with pytest.raises(ValueError, match="grid"):
        pair_agreement(base_labels(), base_labels()[:5], GRID, HEIGHTS, HEIGHTS)
    bad = base_labels()
    bad[0, 0, 0] = 9
    with pytest.raises(ValueError, match="0..8"):
        pair_agreement(base_labels(), bad, GRID, HEIGHTS, HEIGHTS)


def test_pooled_means_over_cases() -> None:
    a = base_labels()
    b = a.copy()
    b[2, 2, 0:4] = SEGMENT_IDS["L_petrous"]
    r1 = pair_agreement(a, b, GRID, HEIGHTS, dict(HEIGHTS, L_petrolingual=9.5))
    r2 = pair_agreement(b, a, GRID, HEIGHTS, HEIGHTS)
    s = summarise_rows([r1, r2])
    assert s["n_cases"] == 2
    assert s["segments"]["L_petrous"]["mean_dice"] == pytest.approx(20 / 24)
    assert s["segments"]["L_petrous"]["mean_volume_difference_mm3"] == pytest.approx(0.0)  # +2 and −2
    assert s["segments"]["L_petrous"]["mean_abs_volume_difference_mm3"] == pytest.approx(2.0)
    assert (s["segments"]["L_petrous"]["n_with_calcium"], s["segments"]["R_supraclinoid"]["n_with_calcium"]) == (2, 0)
    assert s["landmarks"]["L_petrolingual"] == pytest.approx(1.25)
    assert s["landmark_mean_error_mm"] == pytest.approx(2.5 / 12)


# --- from a store: a duck-typed stand-in with the CorrectionStore reading API (docs/STORE.md) --------------------

@dataclass
class FakeCase:
    case_id: str
    split: str
    status: str = "corrected"
    corrections: dict[str, list[int]] = field(default_factory=dict)
    approved: tuple[str, int] | None = None


class FakeStore:
    """Files laid out as ``root/<case>/<who>/`` holding ``calcifications.nii.gz`` and ``landmarks.mrk.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cases: list[FakeCase] = []

    def put(self, case: FakeCase, who: str, labels: np.ndarray, heights: dict[str, float]) -> None:
        from iacseg.io.writers import write_image
        from iacseg.outputs.markups import write_landmarks

        folder = self.root / case.case_id / who
        write_image(folder / "calcifications.nii.gz", labels, GRID)
        write_landmarks(folder / "landmarks.mrk.json", landmarks(heights).values())
        if case not in self._cases:
            self._cases.append(case)

    def _folder(self, case_id: str, which: str | tuple[str, int]) -> Path:
        return self.root / case_id / (which if isinstance(which, str) else f"{which[0]}_v{which[1]}")

    def cases(self) -> list[FakeCase]:
        return list(self._cases)

    def labels_path(self, case_id: str, which: str | tuple[str, int] = "original") -> Path:
        return self._folder(case_id, which) / "calcifications.nii.gz"

    def landmarks_path(self, case_id: str, which: str | tuple[str, int] = "original") -> Path:
        return self._folder(case_id, which) / "landmarks.mrk.json"


@pytest.fixture
def two_reader_store(tmp_path: Path) -> FakeStore:
    """c1: reader A (v1, v2) and Dr B (v1); c2: only A (v1); c3: not corrected."""
    store = FakeStore(tmp_path / "STORE")
    a = base_labels()
    grown = a.copy()
    grown[2, 2, 0:4] = SEGMENT_IDS["L_petrous"]
    c1 = FakeCase("c1", "train", corrections={"A": [1, 2], "Dr B": [1]})
    store.put(c1, "original", a, HEIGHTS)
    store.put(c1, "A_v1", np.zeros_like(a), HEIGHTS)  # superseded by v2: must not be used
    store.put(c1, "A_v2", grown, dict(HEIGHTS, L_petrolingual=9.5))
    store.put(c1, "Dr B_v1", a, HEIGHTS)
    c2 = FakeCase("c2", "test", corrections={"A": [1]})
    store.put(c2, "original", a, HEIGHTS)
    store.put(c2, "A_v1", a, HEIGHTS)
    store.put(FakeCase("c3", "val", status="todo"), "original", a, HEIGHTS)
    return store


def test_store_agreement_uses_each_readers_latest_correction(two_reader_store: FakeStore) -> None:
    result = store_agreement(two_reader_store)
    rows = {(r["case"], r["b"]): r for r in result["model_vs_reader"]["cases"]}
    assert set(rows) == {("c1", "A"), ("c1", "Dr B"), ("c2", "A")}  # c3 has no correction
    assert rows["c1", "A"]["b_version"] == 2 and rows["c1", "A"]["a"] == "model"
    assert rows["c1", "A"]["segments"]["L_petrous"]["volume_difference_mm3"] == pytest.approx(2.0)
    assert rows["c1", "A"]["landmarks"]["L_petrolingual"]["error_mm"] == pytest.approx(2.5)
    assert rows["c1", "Dr B"]["all"]["dice"] == 1.0
    assert result["model_vs_reader"]["by_reader"]["A"]["n_cases"] == 2
    assert result["model_vs_reader"]["pooled"]["n_cases"] == 3
    (pair,) = result["reader_vs_reader"]["cases"]  # only c1 was corrected by both
    assert (pair["case"], pair["a"], pair["a_version"], pair["b"], pair["b_version"]) == ("c1", "A", 2, "Dr B", 1)
    assert pair["segments"]["L_petrous"]["volume_difference_mm3"] == pytest.approx(-2.0)  # Dr B − A
    assert result["reader_vs_reader"]["pairs"][0]["a"] == "A"
    json.dumps(result, allow_nan=False)


def test_agreement_csv_and_terminal_summary(two_reader_store: FakeStore, tmp_path: Path) -> None:
    result = store_agreement(two_reader_store)
    path = write_agreement_csv(result, tmp_path / "out" / "agreement.csv")
    rows = list(csv.DictReader(path.open()))
    assert [(r["comparison"], r["case"], r["b"]) for r in rows] == [
        ("model_vs_reader", "c1", "A"), ("model_vs_reader", "c1", "Dr B"), ("model_vs_reader", "c2", "A"),
        ("reader_vs_reader", "c1", "Dr B")]
    assert float(rows[0]["volume_difference_L_petrous_mm3"]) == 2.0
    assert float(rows[0]["landmark_error_L_petrolingual_mm"]) == 2.5
    assert rows[0]["a_version"] == "" and rows[0]["b_version"] == "2"
    text = format_agreement(result)
    assert "Model vs reader" in text and "Reader vs reader" in text and "L_petrous" in text
    assert "no corrected cases" in format_agreement(store_agreement(FakeStore(tmp_path / "empty")))


def test_agreement_from_a_real_store_of_one_phantom_case_and_two_readers(tmp_path: Path) -> None:
    from iacseg.phantom import make_phantom
    from iacseg.store import CorrectionStore

    ph = make_phantom(2, slice_mm=5.0, matrix=192)
    engine = write_engine_output(tmp_path / "engine", ph.labels, ph.ct.grid, ph.landmarks)
    store = CorrectionStore.init(tmp_path / "STORE")
    store.add_case(ph.ct, engine, case_id="p1")

    cavernous = ph.labels == SEGMENT_IDS["L_cavernous"]
    n_cav, n_all = int(cavernous.sum()), int((ph.labels > 0).sum())
    assert n_cav > 0
    deleted = np.where(cavernous, 0, ph.labels)
    old = ph.landmarks["L_petrolingual"]
    moved = dict(ph.landmarks, L_petrolingual=Landmark(old.name, old.z_mm + 2.5, (*old.position[:2], old.z_mm + 2.5)))
    move = {"kind": "landmark_moved", "name": "L_petrolingual", "from_z_mm": old.z_mm, "to_z_mm": old.z_mm + 2.5}
    delete = {"kind": "lesion_deleted", "lesion": 1, "from_segment": "L_cavernous"}
    store.add_correction("p1", "Dr A", ph.labels, moved, [move])
    store.add_correction("p1", "Dr A", deleted, moved, [move, delete])  # v2: A's latest
    store.add_correction("p1", "Dr B", deleted, ph.landmarks, [delete])

    result = store_agreement(store)
    rows = {r["b"]: r for r in result["model_vs_reader"]["cases"]}
    voxel = ph.ct.grid.voxel_volume_mm3
    for reader in ("Dr A", "Dr B"):
        r = rows[reader]
        assert r["segments"]["L_cavernous"]["dice"] == 0.0
        assert r["segments"]["L_cavernous"]["volume_difference_mm3"] == pytest.approx(-n_cav * voxel)
        assert r["all"]["dice"] == pytest.approx(2 * (n_all - n_cav) / (2 * n_all - n_cav))
    assert rows["Dr A"]["b_version"] == 2
    assert rows["Dr A"]["landmarks"]["L_petrolingual"]["error_mm"] == pytest.approx(2.5)
    assert rows["Dr B"]["landmark_mean_error_mm"] == pytest.approx(0.0, abs=1e-9)
    (pair,) = result["reader_vs_reader"]["cases"]
    assert (pair["a"], pair["b"]) == ("Dr A", "Dr B")
    assert pair["all"]["dice"] == 1.0 and pair["all"]["volume_difference_mm3"] == 0.0
    assert pair["landmarks"]["L_petrolingual"]["error_mm"] == pytest.approx(2.5)
    assert result["model_vs_reader"]["pooled"]["segments"]["L_cavernous"]["mean_volume_difference_mm3"] == \
        pytest.approx(-n_cav * voxel)


def test_cli_agreement_prints_the_table_and_writes_the_csv(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from store_fixtures import small_case, small_labels, small_landmarks

    from iacseg.cli.main import main
    from iacseg.store import CorrectionStore

    ct, engine = small_case(tmp_path / "case")
    store = CorrectionStore.init(tmp_path / "STORE")
    store.add_case(ct, engine, case_id="s1")
    store.add_correction("s1", "Dr A", small_labels(), small_landmarks(1.5), [])
    csv_path = tmp_path / "agreement.csv"
    assert main(["store", "agreement", str(store.root), "-o", str(csv_path)]) == 0
    out = capsys.readouterr().out
    assert "Model vs reader" in out and "no case has been corrected by two readers" in out
    (row,) = csv.DictReader(csv_path.open())
    assert (row["case"], row["b"], float(row["landmark_mean_error_mm"]), float(row["dice_all"])) == ("s1", "Dr A", 1.5, 1.0)
    assert main(["store", "agreement", str(store.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model_vs_reader"]["pooled"]["n_cases"] == 1
