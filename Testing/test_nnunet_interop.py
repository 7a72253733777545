"""nnU-Net v2 interop: ``iacseg export-nnunet`` and ``--model nnunet:PATH``.

The project's test environment has no nnunetv2 (an optional extra), so most tests need none: the export, the
``nnunet:`` spec, the install message, the weights-only checkpoint loading. The tests marked ``needs_nnunet``
run a fabricated tiny nnU-Net v2 model folder end to end when nnunetv2 is installed and are skipped otherwise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from iacseg.cli.main import main
from iacseg.core.contracts import LANDMARKS, PHANTOM_CT_FILE, SEGMENTS, TRUTH_LABELS_FILE, TRUTH_LANDMARKS_FILE
from iacseg.core.errors import InputError, ModelError
from iacseg.io.volume import CTVolume
from iacseg.core.grid import Grid
from iacseg.models.nnunet_adapter import (NnUNetSpec, checkpoint_paths, context_margin_mm, is_nnunet_spec,
                                          load_checkpoint, model_folder, parse_nnunet_spec)
from iacseg.train.nnunet_export import assign_splits, export_truth_cases

RAS_DIRECTION = (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0)  # i → patient right, j → anterior: not axial LPS


def _truth_case(folder: Path, seed: int) -> dict[str, float]:
    """A tiny truth-layout case stored RAS-ordered; blobs of 600 HU carry segment labels. Returns its facts."""
    from iacseg.io.writers import write_image
    from iacseg.core.landmarks import Landmark
    from iacseg.outputs.markups import write_landmarks

    rng = np.random.default_rng(seed)
    hu = rng.normal(20.0, 5.0, (10, 16, 14)).astype(np.float32)
    hu[:, 0, :] = -1000.0  # some air, as in any head CT
    labels = np.zeros(hu.shape, np.uint8)
    for value, (k, j, i) in zip((2, 7), ((3, 4, 3), (6, 10, 9))):
        hu[k:k + 2, j:j + 2, i:i + 3] = 600.0
        labels[k:k + 2, j:j + 2, i:i + 3] = value
    grid = Grid(hu.shape, (0.5, 0.6, 1.0), (10.0, -5.0, 30.0), RAS_DIRECTION)
    folder.mkdir(parents=True)
    write_image(folder / PHANTOM_CT_FILE, hu, grid)
    write_image(folder / TRUTH_LABELS_FILE, labels, grid)
    write_landmarks(folder / TRUTH_LANDMARKS_FILE,
                    [Landmark(name, 31.0 + n, (0.0, 0.0, 31.0 + n)) for n, name in enumerate(LANDMARKS)])
    return {"n_labelled": float((labels > 0).sum()), "n_l_petrous": float((labels == 2).sum())}


@pytest.fixture(scope="module")
def truth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("truth")
    for n, name in enumerate(("patient_smith", "patient_jones", "patient_brown")):
        _truth_case(root / name, n)
    return root


@pytest.fixture(scope="module")
def exported(truth_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("raw")
    assert main(["export-nnunet", "--data", str(truth_root), "-o", str(out), "--progress", "none",
                 "--val-fraction", "0.34"]) == 0
    return out / "Dataset502_ICACalc"


def _read(path: Path):
    import SimpleITK as sitk

    return sitk.ReadImage(str(path))


# ---------------------------------------------------------------- export

def test_export_writes_the_nnunet_v2_layout_with_opaque_case_ids(exported):
    ids = ["ICACalc_000", "ICACalc_001", "ICACalc_002"]
    assert sorted(p.name for p in (exported / "imagesTr").iterdir()) == [f"{c}_0000.nii.gz" for c in ids]
    assert sorted(p.name for p in (exported / "labelsTr").iterdir()) == [f"{c}.nii.gz" for c in ids]
    text = "".join(p.read_text() for p in exported.glob("*.json"))
    assert "patient" not in text and "smith" not in text  # folder names can identify people


def test_export_dataset_json_and_split(exported):
    ds = json.loads((exported / "dataset.json").read_text())
    assert ds["channel_names"] == {"0": "CT"} and ds["file_ending"] == ".nii.gz" and ds["numTraining"] == 3
    assert ds["labels"] == {"background": 0, **{name: value for value, name in SEGMENTS.items()}}
    (fold,) = json.loads((exported / "splits_final.json").read_text())
    assert len(fold["val"]) == 1 and len(fold["train"]) == 2 and not set(fold["val"]) & set(fold["train"])
    marks = json.loads((exported / "landmarks.json").read_text())
    assert [m["case"] for m in marks] == ["ICACalc_000", "ICACalc_001", "ICACalc_002"]
    assert marks[0]["landmarks"][LANDMARKS[0]]["z_mm"] == pytest.approx(31.0)


def test_export_labels_sit_on_the_image_grid_in_axial_lps(exported, truth_root):
    import SimpleITK as sitk

    image = _read(exported / "imagesTr/ICACalc_000_0000.nii.gz")
    labels = _read(exported / "labelsTr/ICACalc_000.nii.gz")
    assert image.GetSize() == labels.GetSize() == (14, 16, 10)
    assert np.allclose(image.GetDirection(), np.eye(3).ravel())
    assert np.allclose(labels.GetDirection(), image.GetDirection())
    assert np.allclose(image.GetOrigin(), labels.GetOrigin()) and np.allclose(image.GetSpacing(), (0.5, 0.6, 1.0))
    hu, lab = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(labels)
    assert hu.dtype == np.int16 and set(np.unique(lab).tolist()) == {0, 2, 7}
    assert np.all(hu[lab > 0] == 600) and np.all(hu[lab == 0] < 130)  # each label on its own blob
    source = sitk.ReadImage(str(truth_root / "patient_brown" / TRUTH_LABELS_FILE))
    # the same voxels in the world: the RAS-ordered source is flipped along i and j, not resampled
    assert np.array_equal(lab, sitk.GetArrayFromImage(source)[:, ::-1, ::-1])
    world_src = source.TransformIndexToPhysicalPoint((0, 0, 0))
    assert np.allclose(labels.TransformIndexToPhysicalPoint((13, 15, 0)), world_src)


def test_export_refuses_a_non_empty_target_and_keeps_names_on_request(truth_root, exported, tmp_path):
    with pytest.raises(InputError, match="already exists"):
        export_truth_cases(truth_root, exported.parent)
    path = export_truth_cases(truth_root, tmp_path, dataset_id=7, dataset_name="Mine", keep_names=True)
    assert path.name == "Dataset007_Mine"
    assert (path / "imagesTr" / "patient_smith_0000.nii.gz").is_file()
    assert not list(tmp_path.glob(".*partial"))  # built aside, renamed into place


def test_export_of_a_folder_without_cases_is_a_clear_error(tmp_path):
    assert main(["export-nnunet", "--data", str(tmp_path), "-o", str(tmp_path / "out"), "--progress", "none"]) == 2
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("n, fraction, n_val", [(1, 0.2, 0), (2, 0.2, 1), (10, 0.2, 2), (10, 0.0, 0), (5, 0.9, 4)])
def test_split_sizes(n, fraction, n_val):
    splits = assign_splits(n, fraction)
    assert len(splits) == n and splits.count("val") == n_val


# ---------------------------------------------------------------- the nnunet: spec

def test_spec_parsing_reads_every_option():
    spec = parse_nnunet_spec("nnunet:/m/Dataset502,fold=0+2,checkpoint=checkpoint_best.pth,label=3,tta=0,step=0.25")
    assert spec == NnUNetSpec(Path("/m/Dataset502"), (0, 2), "checkpoint_best.pth", (3,), False, 0.25)
    assert parse_nnunet_spec("NNUNET:~/m,fold=all").folds == ("all",)
    assert parse_nnunet_spec("nnunet:/m") == NnUNetSpec(Path("/m"))
    assert is_nnunet_spec("nnunet:/m") and not is_nnunet_spec("unet-demo") and not is_nnunet_spec(None)


@pytest.mark.parametrize("bad", ["nnunet:", "nnunet:/m,fold=x", "nnunet:/m,label=0", "nnunet:/m,colour=red",
                                 "nnunet:/m,step=2", "nnunet:/m,tta=yes", "nnunet:/m,checkpoint=../x.pth"])
def test_spec_errors_are_input_errors(bad):
    with pytest.raises(InputError):
        parse_nnunet_spec(bad)


def test_segment_with_nnunet_model_but_no_nnunetv2_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "nnunetv2", None)  # as in an install without the [nnunet] extra
    case = tmp_path / "case"
    _truth_case(case, 5)
    code = main(["segment", str(case / PHANTOM_CT_FILE), "-o", str(tmp_path / "out"), "--progress", "none",
                 "--device", "cpu", "--model", f"nnunet:{tmp_path}"])
    assert code == 2 and "pip install 'iacseg[nnunet]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_model_folder_and_fold_discovery(tmp_path):
    trained = tmp_path / "Dataset502_ICACalc" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    for name in ("fold_1", "fold_0", "fold_all"):
        (trained / name).mkdir(parents=True)
        (trained / name / "checkpoint_final.pth").write_bytes(b"")
    (trained / "plans.json").write_text("{}")
    (trained / "dataset.json").write_text("{}")
    assert model_folder(tmp_path / "Dataset502_ICACalc") == trained  # its only trained model
    found = checkpoint_paths(trained, NnUNetSpec(trained))
    assert [p.parent.name for p in found] == ["fold_0", "fold_1"]  # numbered folds, like nnUNetv2_predict
    assert [p.parent.name for p in checkpoint_paths(trained, NnUNetSpec(trained, folds=("all",)))] == ["fold_all"]
    with pytest.raises(ModelError, match="fold_3"):
        checkpoint_paths(trained, NnUNetSpec(trained, folds=(3,)))
    with pytest.raises(ModelError, match="not an nnU-Net v2 trained-model folder"):
        model_folder(tmp_path)


_RAN = []


def _side_effect() -> list:
    _RAN.append("ran")
    return []


class _Sneaky:
    def __reduce__(self):
        return (_side_effect, ())


def test_checkpoints_load_weights_only_and_nothing_else_runs(tmp_path):
    good = {"network_weights": {"w": torch.ones(2)}, "trainer_name": "nnUNetTrainer",
            "init_args": {"configuration": "3d_fullres", "device": torch.device("cpu")},
            "logging": {"mean_fg_dice": [np.float32(0.5)], "lrs": [0.01]}, "_best_ema": np.float64(0.5),
            "inference_allowed_mirroring_axes": (0, 1, 2)}
    torch.save(good, tmp_path / "good.pth")
    loaded = load_checkpoint(tmp_path / "good.pth")  # nnU-Net's log holds NumPy scalars: allowed
    assert torch.equal(loaded["network_weights"]["w"], torch.ones(2)) and float(loaded["_best_ema"]) == 0.5
    torch.save({**good, "extra": _Sneaky()}, tmp_path / "bad.pth")
    with pytest.raises(ModelError, match="weights-only"):
        load_checkpoint(tmp_path / "bad.pth")
    assert _RAN == []  # the pickle's code never ran
    torch.save({"w": torch.ones(1)}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="not an nnU-Net v2 checkpoint"):
        load_checkpoint(tmp_path / "other.pth")


def test_context_margin_is_half_the_patch_in_mm_along_input_axes():
    assert context_margin_mm([8, 16, 16], [1.0, 0.5, 0.5], [0, 1, 2]).tolist() == [4.0, 4.0, 4.0]
    assert context_margin_mm([20, 40], [0.5, 0.4], [0, 1, 2]).tolist() == [0.0, 5.0, 8.0]  # 2D: no slice context
    assert context_margin_mm([8, 16, 32], [3.0, 1.0, 0.5], [2, 0, 1]).tolist() == [8.0, 8.0, 12.0]


# ---------------------------------------------------------------- with nnunetv2 installed

needs_nnunet = pytest.mark.skipif(not __import__("importlib").util.find_spec("nnunetv2"),
                                  reason="nnunetv2 not installed (optional extra [nnunet])")


def fabricate_nnunet_model(root: Path, winner: int | None, reader: str = "SimpleITKIO") -> Path:
    """A tiny nnU-Net v2 trained-model folder (dataset.json, plans.json, fold_0/checkpoint_final.pth).

    Its network outputs label ``winner`` everywhere (all weights 0, the output bias favours it), or, with
    ``winner=None``, label 1 exactly where the CT is brighter than its surroundings (a centre-tap path from the
    input through the skip connection to the label-1 logit; no blurring, so voxel positions are kept)."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    dataset = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": 1,
               "file_ending": ".nii.gz"}
    arch = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {"n_stages": 2, "features_per_stage": [4, 8], "conv_op": "torch.nn.modules.conv.Conv3d",
                            "kernel_sizes": [[3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [2, 2, 2]],
                            "n_conv_per_stage": [1, 1], "n_conv_per_stage_decoder": [1], "conv_bias": True,
                            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                            "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
                            "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                            "nonlin_kwargs": {"inplace": True}},
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}
    fn = "resample_data_or_seg_to_shape"
    resample = {"resampling_fn_data": fn, "resampling_fn_seg": fn, "resampling_fn_probabilities": fn,
                **{f"resampling_fn_{what}_kwargs": {"is_seg": what == "seg", "order": 3 if what == "data" else 1,
                                                    "order_z": 0, "force_separate_z": None}
                   for what in ("data", "seg", "probabilities")}}
    plans = {"dataset_name": "Dataset900_Fab", "plans_name": "nnUNetPlans", "image_reader_writer": reader,
             "original_median_spacing_after_transp": [1.0, 0.5, 0.5],
             "original_median_shape_after_transp": [8, 16, 16], "transpose_forward": [0, 1, 2],
             "transpose_backward": [0, 1, 2], "experiment_planner_used": "ExperimentPlanner",
             "label_manager": "LabelManager",
             "foreground_intensity_properties_per_channel": {"0": {"max": 1000.0, "mean": 300.0, "median": 300.0,
                                                                   "min": 0.0, "percentile_00_5": 0.0,
                                                                   "percentile_99_5": 1000.0, "std": 100.0}},
             "configurations": {"3d_fullres": {
                 "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
                 "batch_size": 2, "patch_size": [8, 16, 16], "median_image_size_in_voxels": [8, 16, 16],
                 "spacing": [1.0, 0.5, 0.5], "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
                 "architecture": arch, "batch_dice": False, **resample}}}
    pm = PlansManager(plans)
    net = nnUNetTrainer.build_network_architecture(pm, pm.get_configuration("3d_fullres"), 1, 3,
                                                   enable_deep_supervision=False)
    with torch.no_grad():
        for param in net.parameters():
            param.zero_()
        seg = net.decoder.seg_layers[0]
        if winner is not None:
            seg.bias[winner] = 10.0
        else:
            first, up = net.encoder.stages[0][0].convs[0], net.decoder.stages[0].convs[0]
            first.conv.weight[0, 0, 1, 1, 1] = 1.0  # channel 0 = the normalised CT
            first.norm.weight[0] = 1.0
            up.conv.weight[0, 4, 1, 1, 1] = 1.0  # input 4 = skip channel 0 (after the 4 upsampled channels)
            up.norm.weight[0] = 1.0
            seg.weight[1, 0] = 5.0
            seg.bias[0] = 2.0
    state = {k: v.clone() for k, v in net.state_dict().items()}
    folder = root / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (folder / "fold_0").mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps(dataset))
    (folder / "plans.json").write_text(json.dumps(plans))
    torch.save({"network_weights": state, "optimizer_state": {}, "grad_scaler_state": None,
                "logging": {"mean_fg_dice": [np.float32(0.0)]}, "_best_ema": np.float32(0.0), "current_epoch": 1,
                "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0, "dataset_json": dataset,
                              "device": torch.device("cpu")},
                "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2)},
               folder / "fold_0" / "checkpoint_final.pth")
    return folder


def _ct() -> CTVolume:
    hu = np.full((12, 24, 20), 40.0, np.float32)
    hu[4:8, 6:12, 5:9] = 500.0
    return CTVolume(hu, Grid(hu.shape, (0.5, 0.5, 1.0), (0.0, 0.0, 0.0)))


@needs_nnunet
def test_fabricated_nnunet_model_gives_its_label_inside_the_region_only(tmp_path):
    from iacseg.models.nnunet_adapter import NnUNetSegmenter

    folder = fabricate_nnunet_model(tmp_path, winner=2)
    model = NnUNetSegmenter.from_spec(f"nnunet:{tmp_path},fold=0,tta=0", device="cpu")
    assert model.name == f"nnunet:{tmp_path.name}/nnUNetTrainer__nnUNetPlans__3d_fullres" and model.threshold == 0.5
    assert model.config["architecture"]["params"]["calcium_labels"] == [1, 2] and len(model.sha256) == 64
    roi = (slice(2, 10), slice(4, 20), slice(3, 15))
    prob = model.predict_proba(_ct(), roi)
    assert prob.shape == (12, 24, 20) and prob.dtype == np.float32
    assert prob[roi].min() > 0.99  # label 2 is calcium by default
    outside = np.ones(prob.shape, bool)
    outside[roi] = False
    assert prob[outside].max() == 0.0
    only_1 = NnUNetSegmenter.from_spec(f"nnunet:{folder},label=1,tta=0", device="cpu")
    assert only_1.predict_proba(_ct(), roi).max() < 0.01  # label 2 is not label 1
    with pytest.raises(InputError, match="label=5"):
        NnUNetSegmenter.from_spec(f"nnunet:{folder},label=5", device="cpu")


@needs_nnunet
@pytest.mark.parametrize("reader", ["SimpleITKIO", "NibabelIOWithReorient"])
def test_nnunet_probability_lands_on_the_ct_voxels_it_came_from(tmp_path, reader):
    from iacseg.models.nnunet_adapter import NnUNetSegmenter

    fabricate_nnunet_model(tmp_path, winner=None, reader=reader)
    model = NnUNetSegmenter.from_spec(f"nnunet:{tmp_path}", device="cpu")  # default: mirroring, every fold
    seen = []
    predict = model.predictor.predict_single_npy_array
    model.predictor.predict_single_npy_array = lambda image, props, *a: seen.append((image, props)) or predict(
        image, props, *a)
    ct = _ct()
    roi = (slice(1, 11), slice(3, 21), slice(2, 17))
    prob = model.predict_proba(ct, roi)
    blob = ct.hu >= 130
    assert np.array_equal(prob >= 0.5, blob)  # the blob's voxels exactly: no shift, no flip
    (image, props), = seen
    assert props["spacing"] == [1.0, 0.5, 0.5]  # (sk, sj, si) mm
    crop = ct.hu[0:12, 0:24, 0:20]  # roi + 4 mm of context (half the 8×16×16 patch at 1×0.5×0.5 mm), clipped
    expected = crop[:, ::-1, ::-1] if reader == "NibabelIOWithReorient" else crop  # RAS voxel order for *Reorient
    assert np.array_equal(image[0], expected)


@needs_nnunet
@pytest.mark.slow
def test_segment_with_an_nnunet_model_writes_the_contract_outputs(tmp_path):
    import SimpleITK as sitk

    from iacseg.core.contracts import LABELS_FILE, REPORT_JSON
    from iacseg.phantom import generate_cases

    (case,) = generate_cases(tmp_path / "truth", 70101, 1, slice_mm=2.5)
    fabricate_nnunet_model(tmp_path / "Dataset900_Fab", winner=2)
    out = tmp_path / "out"
    assert main(["segment", str(case / PHANTOM_CT_FILE), "-o", str(out), "--progress", "none", "--device", "cpu",
                 "--model", f"nnunet:{tmp_path / 'Dataset900_Fab'},tta=0"]) == 0
    report = json.loads((out / REPORT_JSON).read_text())
    (segmenter,) = [m for m in report["models"] if m["kind"] == "segmenter"]
    assert segmenter["name"] == "nnunet:Dataset900_Fab/nnUNetTrainer__nnUNetPlans__3d_fullres"
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / LABELS_FILE)))
    hu = sitk.GetArrayFromImage(sitk.ReadImage(str(case / PHANTOM_CT_FILE)))
    # "calcium everywhere" from the model: the engine's rules keep only >= 130 HU voxels, mapped to segments 1..8
    assert labels.shape == hu.shape and labels.max() <= 8 and (labels > 0).any() and hu[labels > 0].min() >= 130
