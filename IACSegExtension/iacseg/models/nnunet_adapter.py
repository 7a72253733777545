"""`NnUNetSegmenter`: a user's trained nnU-Net v2 model folder used as the calcification segmenter.

Selected with ``--model nnunet:PATH[,fold=0+1|all][,checkpoint=checkpoint_final.pth][,label=1+2][,tta=0][,step=0.5]``
where PATH is an nnU-Net v2 trained-model folder (``dataset.json``, ``plans.json``, ``fold_N/checkpoint_*.pth``,
e.g. ``nnUNet_results/Dataset502_ICACalc/nnUNetTrainer__nnUNetPlans__3d_fullres``). It needs the optional
extra: ``pip install 'iacseg[nnunet]'``; nnunetv2 is imported only when such a model is used.

What the engine does with it, in the role of `iacseg.models.CalcificationSegmenter`:

* input: the HU volume on the engine's axial LPS grid (``[k, j, i]``; +i left, +j posterior, +k superior),
  cropped to the ICA region plus half the model's patch (mm) of context, spacing given as (sk, sj, si) mm —
  exactly what nnU-Net's ``SimpleITKIO`` would read from a NIfTI of that volume. Models whose plans use a
  reorienting reader (``*WithReorient``, RAS voxel order) get the i and j axes flipped, and back.
* output: float32 ``[k, j, i]`` calcium probability on the input grid = the summed softmax of the chosen labels
  (default: every foreground label, so a model trained on ``iacseg export-nnunet`` labels 1..8 gives "any
  segment"); region-based models give their binary label map instead. The engine then applies its threshold
  (0.5 unless the user gives a threshold), the ≥ 130 HU and single-voxel rules and its own segment mapping.
* checkpoints are pickles. IACSeg opens them only with ``torch.load(weights_only=True)`` (tensors, plain
  containers and NumPy scalars allowed), never with full unpickling, and builds the network itself;
  nnunetv2's own loader would use ``weights_only=False``. A checkpoint holding other objects is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import InputError, ModelError
from ..io.volume import CTVolume
from ..core.grid import Grid
from ..core.progress import Progress, no_progress
from ..core.device import resolve_device
from ..core.files import sha256_of
from ..core.threshold import DEFAULT_THRESHOLD
from .segmenter import expand_box

NNUNET_PREFIX = "nnunet:"
DEFAULT_CHECKPOINT = "checkpoint_final.pth"
INSTALL_HINT = ("pip install 'iacseg[nnunet]' — in the same pip command as torch==2.13.0 torchvision==0.28.0 "
                "so pip keeps your torch build")
#: nnU-Net image readers that reorient to RAS voxel order (from axial LPS: flip the j and i axes).
REORIENTING_READERS = ("NibabelIOWithReorient", "SimpleITKIOWithReorient")
_OPTIONS = ("fold", "checkpoint", "label", "tta", "step")


@dataclass(frozen=True)
class NnUNetSpec:
    """A parsed ``nnunet:PATH[,key=value…]`` model choice.

    ``folds`` empty → every ``fold_N`` holding the checkpoint (as ``nnUNetv2_predict`` does), else ``fold_all``;
    ``labels`` empty → every foreground label counts as calcium; ``mirroring`` = nnU-Net's test-time mirroring;
    ``step`` = sliding-window step as a fraction of the patch (nnU-Net default 0.5).
    """

    folder: Path
    folds: tuple[int | str, ...] = ()
    checkpoint: str = DEFAULT_CHECKPOINT
    labels: tuple[int, ...] = ()
    mirroring: bool = True
    step: float = 0.5


def is_nnunet_spec(value: Any) -> bool:
    """True when ``value`` is a string starting with ``nnunet:`` (case-insensitive)."""
    return isinstance(value, str) and value.strip().lower().startswith(NNUNET_PREFIX)


def _ints(key: str, text: str, allow_all: bool = False) -> tuple[int | str, ...]:
    out: list[int | str] = []
    for part in text.split("+"):
        part = part.strip().lower()
        if allow_all and part == "all":
            out.append("all")
        elif part.isdigit():
            out.append(int(part))
        else:
            extra = " or 'all'" if allow_all else ""
            raise InputError(f"nnunet option {key}={text!r} is not usable; give whole numbers joined by '+'{extra}")
    return tuple(out)


def parse_nnunet_spec(value: str) -> NnUNetSpec:
    """``"nnunet:PATH[,fold=0+1|all][,checkpoint=NAME][,label=1+2][,tta=0|1][,step=0.5]"`` → `NnUNetSpec`.

    `InputError` for a missing path, an unknown option or a value that cannot be used."""
    if not is_nnunet_spec(value):
        raise InputError(f"{value!r} is not an nnU-Net model choice; write nnunet:PATH_TO_TRAINED_MODEL_FOLDER")
    parts = value.strip()[len(NNUNET_PREFIX):].split(",")
    if not parts[0].strip():
        raise InputError("nnunet: needs the path of a trained nnU-Net v2 model folder, e.g. "
                         "nnunet:/data/nnUNet_results/Dataset502_ICACalc/nnUNetTrainer__nnUNetPlans__3d_fullres")
    found: dict[str, Any] = {}
    for part in (p.strip() for p in parts[1:] if p.strip()):
        key, sep, val = part.partition("=")
        key, val = key.strip().lower(), val.strip()
        if not sep or key not in _OPTIONS or not val:
            raise InputError(f"nnunet option {part!r} is not understood; use key=value with key one of "
                             f"{', '.join(_OPTIONS)}")
        if key == "fold":
            found["folds"] = _ints(key, val, allow_all=True)
        elif key == "label":
            labels = _ints(key, val)
            if 0 in labels:
                raise InputError("nnunet option label=0 is the background; choose foreground labels (1, 2, …)")
            found["labels"] = labels
        elif key == "checkpoint":
            if Path(val).name != val or not val.endswith(".pth"):
                raise InputError(f"nnunet option checkpoint={val!r} must be a file name inside fold_N, e.g. "
                                 f"{DEFAULT_CHECKPOINT}")
            found["checkpoint"] = val
        elif key == "tta":
            if val not in ("0", "1"):
                raise InputError(f"nnunet option tta={val!r} must be 1 (mirroring, nnU-Net's default) or 0")
            found["mirroring"] = val == "1"
        else:
            try:
                step = float(val)
            except ValueError:
                step = math.nan
            if not 0.0 < step <= 1.0:
                raise InputError(f"nnunet option step={val!r} must be a fraction of the patch in (0, 1]")
            found["step"] = step
    return NnUNetSpec(folder=Path(parts[0].strip()).expanduser(), **found)


def require_nnunetv2() -> None:
    """`ModelError` with the install command when nnunetv2 cannot be imported."""
    try:
        importlib.import_module("nnunetv2")
    except ImportError:
        raise ModelError(f"nnU-Net models need the optional nnunetv2 package, which is not installed; "
                         f"run {INSTALL_HINT}") from None


def model_folder(folder: Path) -> Path:
    """The trained-model folder: ``folder`` itself, or its only subfolder holding ``plans.json``."""
    if not folder.is_dir():
        raise ModelError(f"nnU-Net model folder {folder} does not exist; give the folder holding plans.json, "
                         f"dataset.json and fold_N/")
    if (folder / "plans.json").is_file() and (folder / "dataset.json").is_file():
        return folder
    inner = sorted(p.parent for p in folder.glob("*/plans.json") if (p.parent / "dataset.json").is_file())
    if len(inner) == 1:
        return inner[0]
    hint = f" (it holds {len(inner)} trained models: name one)" if inner else ""
    raise ModelError(f"{folder} is not an nnU-Net v2 trained-model folder{hint}; give the folder holding "
                     f"plans.json, dataset.json and fold_N/, e.g. …/nnUNetTrainer__nnUNetPlans__3d_fullres")


def checkpoint_paths(folder: Path, spec: NnUNetSpec) -> list[Path]:
    """The checkpoint of each chosen fold; `ModelError` when one is missing or none is found."""
    if spec.folds:
        paths = [folder / f"fold_{f}" / spec.checkpoint for f in spec.folds]
        missing = [str(p.relative_to(folder)) for p in paths if not p.is_file()]
        if missing:
            raise ModelError(f"{folder} has no {', '.join(missing)}; choose folds that were trained (fold=…) "
                             f"or another checkpoint=")
        return paths
    numbered = sorted((p for p in folder.glob(f"fold_*/{spec.checkpoint}") if p.parent.name[5:].isdigit()),
                      key=lambda p: int(p.parent.name[5:]))
    if numbered:
        return numbered
    if (folder / "fold_all" / spec.checkpoint).is_file():
        return [folder / "fold_all" / spec.checkpoint]
    raise ModelError(f"{folder} holds no fold_N/{spec.checkpoint}; finish training that model or choose "
                     f"checkpoint=checkpoint_best.pth")


def _numpy_safe_globals() -> list[Any]:
    """NumPy scalar and dtype classes that nnU-Net's training log stores (allowed in weights-only loading)."""
    core = getattr(np, "_core", None) or np.core
    names = ("Float16DType", "Float32DType", "Float64DType", "Int8DType", "Int16DType", "Int32DType", "Int64DType",
             "UInt8DType", "UInt16DType", "UInt32DType", "UInt64DType", "BoolDType")
    dtypes = getattr(np, "dtypes", None)
    return [core.multiarray.scalar, np.dtype] + [getattr(dtypes, n) for n in names if hasattr(dtypes, n)]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint opened with ``torch.load(weights_only=True)`` (+ NumPy scalars): no code can run.

    `ModelError` when it holds other Python objects or lacks what inference needs."""
    safe = getattr(torch.serialization, "safe_globals", None)
    if safe is None:
        raise ModelError("loading nnU-Net checkpoints safely needs torch >= 2.5; upgrade torch")
    try:
        with safe(_numpy_safe_globals()):
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — UnpicklingError, RuntimeError, EOFError… all mean "not loadable"
        raise ModelError(f"{path} cannot be opened as a weights-only checkpoint ({str(exc).splitlines()[0][:160]}); "
                         f"IACSeg never fully unpickles files because that can run code — use a checkpoint "
                         f"written by nnU-Net v2 training") from None
    needed = ("network_weights", "trainer_name", "init_args")
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in needed):
        raise ModelError(f"{path} is not an nnU-Net v2 checkpoint (it lacks {', '.join(needed)})")
    return ckpt


def _trainer_class(name: str) -> Any:
    """nnU-Net's trainer class by name; the base ``nnUNetTrainer`` (architecture from the plans) when the
    named one cannot be imported here — the strict weight loading then proves the architecture matches."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    if name == "nnUNetTrainer":
        return nnUNetTrainer
    try:
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

        return recursive_find_trainer_class_by_name(name)
    except Exception:  # noqa: BLE001 — an unrelated trainer module may fail to import (optional dependencies)
        return nnUNetTrainer


def build_network(trainer_name: str, plans_manager: Any, configuration: Any, n_in: int, n_out: int) -> torch.nn.Module:
    """The untrained nnU-Net network, built the way the trainer builds it (no deep supervision)."""
    trainer = _trainer_class(trainer_name)
    if "plans_manager" in inspect.signature(trainer.build_network_architecture).parameters:
        return trainer.build_network_architecture(plans_manager, configuration, n_in, n_out,
                                                  enable_deep_supervision=False)
    return trainer.build_network_architecture(configuration.network_arch_class_name,
                                              configuration.network_arch_init_kwargs,
                                              configuration.network_arch_init_kwargs_req_import,
                                              n_in, n_out, enable_deep_supervision=False)


def context_margin_mm(patch_size: list[int], spacing: list[float], transpose_forward: list[int]) -> np.ndarray:
    """Half the network patch in mm along each input axis (k, j, i); 0 along the slice axis of a 2D model."""
    margin = np.zeros(3)
    axes = list(transpose_forward)[-len(patch_size):]
    for axis, p, s in zip(axes, patch_size, spacing):
        margin[axis] = 0.5 * float(p) * float(s)
    return margin


def spacing_kji(grid: Grid) -> list[float]:
    """nnU-Net's spacing order for a ``[k, j, i]`` array: (sk, sj, si) mm."""
    si, sj, sk = (float(s) for s in grid.spacing)
    return [sk, sj, si]


class NnUNetSegmenter:
    """Calcium probability on an axial LPS CT from a trained nnU-Net v2 model (see the module docstring)."""

    kind = "segmenter"

    def __init__(self, predictor: Any, spec: NnUNetSpec, folder: Path, config: dict[str, Any],
                 device: torch.device):
        self.predictor = predictor
        self.spec = spec
        self.folder = folder
        self.config = config
        self.device = device

    @classmethod
    def from_spec(cls, spec: str | NnUNetSpec, device: torch.device | str | None = None) -> "NnUNetSegmenter":
        """Load ``nnunet:PATH[,…]`` (or a parsed spec) on ``device``; `ModelError`/`InputError` when unusable."""
        spec = parse_nnunet_spec(spec) if isinstance(spec, str) else spec
        require_nnunetv2()
        dev = resolve_device(device)
        folder = model_folder(spec.folder)
        paths = checkpoint_paths(folder, spec)
        try:
            dataset = json.loads((folder / "dataset.json").read_text())
            plans = json.loads((folder / "plans.json").read_text())
        except ValueError:
            raise ModelError(f"dataset.json or plans.json in {folder} is not valid JSON; restore the model "
                             f"folder") from None
        checkpoints = [load_checkpoint(p) for p in paths]
        with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net prints; stdout may carry JSON progress
            predictor, info = _make_predictor(folder, spec, dataset, plans, checkpoints, dev)
        digests = [sha256_of(p) for p in paths]
        config = {
            "name": f"nnunet:{folder.parent.name}/{folder.name}", "kind": "segmenter", "threshold": DEFAULT_THRESHOLD,
            "version": f"{checkpoints[0]['trainer_name']} {info['configuration']} "
                       f"fold {'+'.join(p.parent.name[5:] for p in paths)}",
            "sha256": digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest(),
            "architecture": {"name": "nnU-Net v2", "params": info},
        }
        return cls(predictor, spec, folder, config, dev)

    @property
    def name(self) -> str:
        return str(self.config["name"])

    @property
    def version(self) -> str:
        return str(self.config["version"])

    @property
    def sha256(self) -> str:
        return str(self.config["sha256"])

    @property
    def threshold(self) -> float:
        """0.5 on the summed probability of the calcium labels (unless the user gives a threshold)."""
        return float(self.config["threshold"])

    def predict_proba(self, vol: CTVolume, roi: tuple[slice, slice, slice] | None = None,
                      progress: Progress = no_progress) -> np.ndarray:
        """Float32 ``[k, j, i]`` calcium probability on ``vol.grid`` (axial LPS), 0 outside ``roi``.

        nnU-Net sees the HU crop ``roi`` + half its patch of context (mm), at the CT's own spacing; it resamples
        to its training spacing and back itself."""
        shape = vol.hu.shape
        roi = expand_box(roi or (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2])), (0, 0, 0), shape)
        out = np.zeros(shape, dtype=np.float32)
        if any(s.stop <= s.start for s in roi):
            return out
        margin_mm = np.asarray(self.config["architecture"]["params"]["context_margin_mm_kji"], dtype=float)
        margin = np.ceil(margin_mm / np.asarray(spacing_kji(vol.grid))).astype(int)
        crop = expand_box(roi, tuple(int(m) for m in margin), shape)
        image = np.ascontiguousarray(vol.hu[crop], dtype=np.float32)
        flip = self.config["architecture"]["params"]["reader"] in REORIENTING_READERS
        if flip:
            image = np.ascontiguousarray(image[:, ::-1, ::-1])
        progress("segment", 0.0, f"nnU-Net on a {'×'.join(str(n) for n in image.shape)} crop")
        with contextlib.redirect_stdout(io.StringIO()):
            seg, probs = self.predictor.predict_single_npy_array(image[None], {"spacing": spacing_kji(vol.grid)},
                                                                 None, None, True)
        prob = self.calcium_probability(np.asarray(seg), np.asarray(probs))
        if flip:
            prob = prob[:, ::-1, ::-1]
        inner = tuple(slice(r.start - c.start, r.stop - c.start) for r, c in zip(roi, crop))
        out[roi] = prob[inner]
        progress("segment", 1.0, "nnU-Net done")
        return out

    def calcium_probability(self, seg: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Float32 map from nnU-Net's label map ``seg`` and per-class probabilities ``probs`` ``[C, …]``:
        the summed probability of the calcium labels (class ``c`` is the ``c``-th of the model's sorted labels),
        or 0/1 from ``seg`` for region-based models. Labels: ``spec.labels`` or every foreground label."""
        params = self.config["architecture"]["params"]
        labels = list(params["calcium_labels"])
        if params["has_regions"] or probs.ndim != seg.ndim + 1:
            return np.isin(seg, labels).astype(np.float32)
        index = [params["all_labels"].index(v) for v in labels]
        return np.clip(probs[index].sum(axis=0), 0.0, 1.0).astype(np.float32)


def _make_predictor(folder: Path, spec: NnUNetSpec, dataset: dict[str, Any], plans: dict[str, Any],
                    checkpoints: list[dict[str, Any]], device: torch.device) -> tuple[Any, dict[str, Any]]:
    """An initialised ``nnUNetPredictor`` from weights-only checkpoints, and a JSON-able description."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    first = checkpoints[0]
    configuration_name = str(first["init_args"].get("configuration", ""))
    plans_manager = PlansManager(plans)
    try:
        configuration = plans_manager.get_configuration(configuration_name)
    except Exception:  # noqa: BLE001 — nnunetv2 raises plain errors for unknown names
        raise ModelError(f"plans.json in {folder} has no configuration {configuration_name!r} used by the "
                         f"checkpoint; the folder is mixed — restore it from training") from None
    n_in = determine_num_input_channels(plans_manager, configuration, dataset)
    if n_in != 1:
        raise ModelError(f"the nnU-Net model in {folder} expects {n_in} input channels; IACSeg gives it one "
                         f"(the CT in HU) — train it on CT alone (iacseg export-nnunet)")
    label_manager = plans_manager.get_label_manager(dataset)
    foreground = [int(v) for v in label_manager.foreground_labels]
    unknown = [v for v in spec.labels if v not in foreground]
    if unknown:
        raise InputError(f"nnunet option label={'+'.join(map(str, unknown))} is not a foreground label of this "
                         f"model; it has {', '.join(map(str, foreground))} (see its dataset.json)")
    network = build_network(str(first["trainer_name"]), plans_manager, configuration, n_in,
                            label_manager.num_segmentation_heads)
    try:
        network.load_state_dict(first["network_weights"])
    except RuntimeError as exc:
        raise ModelError(f"the weights of {folder} do not fit the network its plans describe "
                         f"({str(exc).splitlines()[0][:160]}); is the trainer a custom one?") from None
    predictor = nnUNetPredictor(tile_step_size=spec.step, use_gaussian=True, use_mirroring=spec.mirroring,
                                perform_everything_on_device=device.type == "cuda", device=device,
                                verbose=False, verbose_preprocessing=False, allow_tqdm=False)
    mirror_axes = first.get("inference_allowed_mirroring_axes")
    predictor.manual_initialization(network, plans_manager, configuration,
                                    [c["network_weights"] for c in checkpoints], dataset,
                                    str(first["trainer_name"]), mirror_axes)
    reader = str(plans.get("image_reader_writer", "SimpleITKIO"))
    info = {"trainer": str(first["trainer_name"]), "configuration": configuration_name,
            "plans": str(plans.get("plans_name", "")), "reader": reader,
            "all_labels": [int(v) for v in label_manager.all_labels], "foreground_labels": foreground,
            "has_regions": bool(label_manager.has_regions),
            "calcium_labels": list(spec.labels) or foreground, "mirroring": spec.mirroring,
            "tile_step": spec.step, "patch_size": [int(p) for p in configuration.patch_size],
            "spacing_mm": [float(s) for s in configuration.spacing],
            "context_margin_mm_kji": context_margin_mm(list(configuration.patch_size), list(configuration.spacing),
                                                       list(plans_manager.transpose_forward)).tolist()}
    return predictor, info
