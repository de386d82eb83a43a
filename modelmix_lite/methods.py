"""What is trained: core presets (paper vs released code) and method presets (Table 1 rows, baselines).

Two orthogonal choices describe a run:

* a :class:`CoreConfig` says *how* the ModelMix machinery behaves where the paper and the authors' released
  code disagree (``CORE_PRESETS["paper"]`` vs ``CORE_PRESETS["released_code"]``);
* a :class:`MethodConfig` says *which* loss terms are on (the ablation rows of Table 1, the baselines).

Where the paper is silent, the ``paper`` preset follows the released code, except where the code's choice is a
defect (mixing a slice with itself, calling hidden pixels background); every choice is stated on its field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .data.tasks import UNANNOTATED
from .errors import ConfigError
from .draws import MIN_ALPHA


def _check_choice(option: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{option}: {value!r} is not one of {', '.join(map(repr, choices))}")


@dataclass(frozen=True)
class CoreConfig:
    """How the ModelMix terms are computed (paper §2 vs the released code; notes = reference_implementation_notes.md).

    Attributes:
        mix_bn: also offer BatchNorm affine (weight, bias) pairs as mixing candidates. Paper §2.2 mixes
            "convolutional parameters" only (False); the code draws 1 of 20 layers, 10 of them BN (True).
        detach_virtual: build the virtual encoder from detached weights. Paper Fig. 1: the mixed path trains
            both encoders (False); the code assigns ``p.data``, so only the head learns from it (True).
        rotate_virtual: the virtual model sees the batch rotated by one random angle and its prediction is
            rotated back before L_vicinal-reg (notes §2). Not in the paper (False); code (True).
        dice_on: pixels of the Dice half of L_sup (Eq. 8). ``"annotated"``: scribbled pixels only, as the
            paper states; ``"all"``: every pixel of a scribbled slice, as the code does (notes §3).
        dice_average: ``"present"``: one Dice per class present in the scribbles, averaged (paper silent;
            the usual multi-class Dice); ``"pooled"``: one ratio over all classes (the code's multiDice).
        lambda_alpha: λ ~ Beta(a, a) of the parameter interpolation (Eq. 5). The paper gives no value; both
            presets use the code's 0.5 (U-shaped: mostly near-copies of one model, sometimes a true blend).
        mixup_alpha: the image-mixup ratio α ~ Beta(a, a) of Eq. 1 (paper: unstated; code 0.5, per sample).
        mixup_partner: the intra-batch mixup partner: ``"derangement"`` (a random other slice: Eq. 1 mixes
            two images) or ``"flip"`` (the code's slice ``B-1-i``, which mixes the middle slice of an odd
            batch with itself).
        mixup_ce: add the code's mixup cross-entropy on mixed scribbles to L_inv (code: True; not in Eq. 1).
        cos_reduce: the vectors compared by the cosine terms (Eqs. 1, 6): ``"pixel"`` = each pixel's class
            vector (paper preset: Eq. 6 asks the virtual model to segment like its host, and the per-pixel
            cosine is optimal only where the predictions agree at every pixel; notebook 04 works this out) or
            ``"spatial"`` = each class map over H·W (the released ACDC/MSCMR code, and CycleMix [22]).
        cutout_size: side of the square cutout as a fraction of the slice side (code: 32 px of 256 = 0.125).
        cutout_mm: side of the cutout in mm, used instead of ``cutout_size`` when the slices have a physical
            pixel size (``TrainConfig.spacing_mm > 0``; :meth:`with_physical_cutout`). The code's 32 px are
            24 mm on MSCMRseg (0.75 mm) and about 48 mm on ACDC (1.5 mm); 28 mm is 12.5 % of a 224 mm view,
            the fraction above. ``0``: always ``cutout_size``.
        cutout_p: probability that a slice gets a cutout (paper §2.1 "for each individual image": 1.0;
            0 switches cutout off).
        cutout_label_fill: scribble value written under the cutout. The code writes background (0); the
            paper leaves labels alone, so the paper preset marks them unannotated (255): nothing is
            claimed about pixels the network cannot see.
        dropout: the encoder dropout schedule of ``models.TaskModelSet``: ``"paper"`` (0.5 before every conv
            block, §3.1), ``"released"`` (p = [.05, .1, .2, .3, .5] / 3 per block, notes §1) or ``"none"``.
        identical_init: all task models start from the same weights (code: ``deepcopy``; paper silent → code).
        pairs: the complementary task pairs Ω of Eqs. 6-7, used every iteration: ``"all"`` ordered pairs
            (i, j), i ≠ j (with two tasks: both directions, as the code), or ``"first"``: only pairs that
            include the first task (e.g. MyoPS mixed with each of ACDC and MSCMR, not ACDC with MSCMR).
        sup_rows: the batch rows of L_sup and L_vicinal-sup (Eqs. 7-8). ``"scribbled"``: the slices of the
            scribbled subjects (the paper: the terms are defined on scribbles); ``"batch"``: every row, so that
            with ``dice_on="all"`` the unlabeled slices' predictions sit in the Dice denominator, as in the code
            (notes §3, ~0.81 logged Dice loss). The pCE is unchanged by it: unlabeled rows have no annotated
            pixel, except under a cutout that writes background (``cutout_label_fill=0``, as the code).
        encoder_bn: BatchNorm of #5's shared encoder (``TaskModelSet``): ``"per_task"`` (each task keeps its
            own BN layers; the encoder's convolutions are shared; both presets: the paper does not say, and
            shared running statistics of bSSFP and LGE slices would penalise #5) or ``"shared"`` (one encoder
            object, BN included: the library's behaviour before this option).
        myops_reg: L_vicinal-reg of a MyoPS host (Eq. 6). ``"cosine"``: the cosine of :attr:`cos_reduce`, as for
            every task; ``"degenerate"``: the code's MyoPS term, a cosine over a size-1 dimension
            (:func:`~modelmix_lite.losses.degenerate_reg_loss`, notes §3 and disagreement 5), ≈ 0 gradient.
    """

    mix_bn: bool = False
    detach_virtual: bool = False
    rotate_virtual: bool = False
    dice_on: str = "annotated"
    dice_average: str = "present"
    lambda_alpha: float = 0.5
    mixup_alpha: float = 0.5
    mixup_partner: str = "derangement"
    mixup_ce: bool = False
    cos_reduce: str = "pixel"
    cutout_size: float = 0.125
    cutout_mm: float = 28.0
    cutout_p: float = 1.0
    cutout_label_fill: int = UNANNOTATED
    dropout: str = "paper"
    identical_init: bool = True
    pairs: str = "all"
    sup_rows: str = "scribbled"
    myops_reg: str = "cosine"
    encoder_bn: str = "per_task"

    def __post_init__(self) -> None:
        _check_choice("dice_on", self.dice_on, ("annotated", "all"))
        _check_choice("cos_reduce", self.cos_reduce, ("spatial", "pixel"))
        _check_choice("dice_average", self.dice_average, ("present", "pooled"))
        _check_choice("mixup_partner", self.mixup_partner, ("derangement", "flip"))
        _check_choice("dropout", self.dropout, ("paper", "released", "none"))
        _check_choice("pairs", self.pairs, ("all", "first"))
        _check_choice("cutout_label_fill", self.cutout_label_fill, (0, UNANNOTATED))
        _check_choice("sup_rows", self.sup_rows, ("scribbled", "batch"))
        _check_choice("myops_reg", self.myops_reg, ("cosine", "degenerate"))
        _check_choice("encoder_bn", self.encoder_bn, ("per_task", "shared"))
        if not self.lambda_alpha >= MIN_ALPHA:
            raise ConfigError(f"lambda_alpha: Beta concentration must be >= {MIN_ALPHA}, got {self.lambda_alpha!r}")
        if not self.mixup_alpha >= MIN_ALPHA:
            raise ConfigError(f"mixup_alpha: Beta concentration must be >= {MIN_ALPHA}, got {self.mixup_alpha!r}")
        if not 0.0 <= self.cutout_p <= 1.0:
            raise ConfigError(f"cutout_p: must be in [0, 1], got {self.cutout_p!r}")
        if not 0.0 < self.cutout_size < 1.0:
            raise ConfigError(f"cutout_size: must be a fraction in (0, 1), got {self.cutout_size!r}")
        if not self.cutout_mm >= 0:
            raise ConfigError(f"cutout_mm: must be >= 0, got {self.cutout_mm!r}")

    def with_physical_cutout(self, fov_mm: float | None) -> CoreConfig:
        """This preset with ``cutout_size = cutout_mm / fov_mm`` (unchanged without a physical view or ``cutout_mm``)."""
        if not fov_mm or not self.cutout_mm:
            return self
        if self.cutout_mm >= fov_mm:
            raise ConfigError(f"cutout_mm: {self.cutout_mm} mm does not fit in the {fov_mm:g} mm field of view")
        return dataclasses.replace(self, cutout_size=self.cutout_mm / fov_mm)


CORE_PRESETS: dict[str, CoreConfig] = {
    "paper": CoreConfig(),
    "released_code": CoreConfig(
        mix_bn=True,
        detach_virtual=True,
        rotate_virtual=True,
        dice_on="all",
        dice_average="pooled",
        mixup_partner="flip",
        mixup_ce=True,
        cutout_label_fill=0,
        dropout="released",
        cos_reduce="spatial",
        sup_rows="batch",
        myops_reg="degenerate",
    ),
}
"""``paper``: what §2-3 describe; ``released_code``: what BWGZK/ModelMix@f0f7d4e does (notes §2-4)."""

PRESET_TRAINING: dict[str, dict[str, object]] = {
    "paper": {},
    "released_code": {"lr": 1e-4, "weight_decay": 5e-4, "lr_schedule": "constant", "warmup_steps": 0},
}
"""Training fields (:class:`~modelmix_lite.config.TrainConfig`) that a core preset sets over the profile's, before
``--set`` overrides. ``released_code``: the code's optimiser, Adam lr 1e-4 with weight decay 5e-4 (L2, hard-coded)
and no schedule (notes §4). ``paper``: none; the profile keeps its own optimiser (the ``paper`` profile has §3.1's
Adam 1e-3, the CPU profiles the schedule chosen on the real validation splits)."""


BASELINES: tuple[str, ...] = ("mixup", "cutout", "wsl4", "cyclemix", "nnpu", "cvir", "shapepu")
"""The comparison methods of paper §3.3 whose objective is :func:`modelmix_lite.baselines.baseline_terms`."""

_UNSUPERVISED_BASELINES = ("wsl4", "cyclemix", "nnpu", "cvir", "shapepu")
"""Baselines with a term on unannotated pixels (pseudo labels, consistency, PU risk): they see unlabeled slices."""

PRIOR_BASELINES: tuple[str, ...] = ("nnpu", "cvir")
"""Baselines given the class ratio of each task as extra information (paper §3.3). ShapePU is not: it estimates
the ratio by EM, as its original does (:func:`~modelmix_lite.baselines.em_class_prior`)."""


@dataclass(frozen=True)
class MethodConfig:
    """Which loss terms a method trains with.

    Attributes:
        name: registry key.
        summary: one line for ``--help`` and tables.
        dice: the task models' own supervised term is L_sup = pCE + Dice (Eq. 8) rather than pCE alone.
            When ``vicinal_sup`` is on, this term is the f_i half of Eq. 7.
        inv: mix-invariance loss L_inv with cutout + intra-task mixup (Eq. 1).
        vicinal_sup: L_sup of every virtual model f̃_ij (Eq. 7).
        vicinal_reg: cosine consistency of f̃_ij with its host f_i (Eq. 6).
        shared_encoder: one encoder for all tasks, one decoder per task (Table 1 "Share Enc").
        target: what a training slice is supervised with: ``"scribble"`` (5 scribbled subjects, the rest
            unlabeled) or ``"label"`` (full ground truth on every training subject).
        min_tasks: fewest tasks the method makes sense with.
        baseline: a name of :data:`BASELINES`: the task models train with that comparison method's terms
            (:mod:`modelmix_lite.baselines`) instead of the ModelMix terms above; ``""``: none.
    """

    name: str
    summary: str
    dice: bool = False
    inv: bool = False
    vicinal_sup: bool = False
    vicinal_reg: bool = False
    shared_encoder: bool = False
    target: str = "scribble"
    min_tasks: int = 1
    baseline: str = ""

    def __post_init__(self) -> None:
        _check_choice("baseline", self.baseline, ("", *BASELINES))

    @property
    def uses_unlabeled(self) -> bool:
        """Whether unlabeled slices contribute (only unsupervised terms use them: L_inv, L_vicinal-reg, and the
        pseudo-label, consistency and PU terms of some baselines)."""
        return self.target == "scribble" and (
            self.inv or self.vicinal_reg or self.baseline in _UNSUPERVISED_BASELINES
        )

    @property
    def mixes_images(self) -> bool:
        """Whether slices are mixed with an intra-batch partner (needs >= 2 slices per batch)."""
        return self.inv or self.baseline in ("mixup", "cyclemix")

    @property
    def aux_decoder(self) -> bool:
        """Whether each task model has DMPLS's auxiliary decoder (the WSL4 baseline)."""
        return self.baseline == "wsl4"

    @property
    def needs_prior(self) -> bool:
        """Whether the method is given each task's class ratio (nnPU and CVIR)."""
        return self.baseline in PRIOR_BASELINES

    @property
    def mixes_models(self) -> bool:
        """Whether virtual models f̃_ij are built (Eqs. 5-7)."""
        return self.vicinal_sup or self.vicinal_reg


def _register(*methods: MethodConfig) -> dict[str, MethodConfig]:
    return {m.name: m for m in methods}


METHODS: dict[str, MethodConfig] = _register(
    MethodConfig("pce", "partial cross-entropy on scribbled pixels, one model per task (Table 2 'PCE')"),
    MethodConfig("#1", "Table 1 #1: L_pce, separate models trained side by side", min_tasks=2),
    MethodConfig("#2", "Table 1 #2: L_pce + L_inv (Eq. 1)", inv=True, min_tasks=2),
    MethodConfig("#2+dice", "control row: #2 with the Dice term of #3 (L_sup = pCE + Dice, Eq. 8) and no virtual "
                 "model", dice=True, inv=True, min_tasks=2),
    MethodConfig(
        "#3", "Table 1 #3: L_inv + L_vicinal-sup (Eqs. 1, 7)", dice=True, inv=True, vicinal_sup=True, min_tasks=2
    ),
    MethodConfig(
        "#4",
        "Table 1 #4 = ModelMix: L_inv + L_vicinal-sup + L_vicinal-reg (Eq. 9)",
        dice=True,
        inv=True,
        vicinal_sup=True,
        vicinal_reg=True,
        min_tasks=2,
    ),
    MethodConfig("#5", "Table 1 #5: shared encoder, L_pce + L_inv", inv=True, shared_encoder=True, min_tasks=2),
    MethodConfig("fullsup", "every training pixel labelled: L_sup (Eq. 8) on ground truth (Table 2 'FullSup')",
                 dice=True, target="label"),
    MethodConfig("mixup", "Mixup [21]: pCE + soft-label CE on intra-batch mixed slices (Table 2)", baseline="mixup"),
    MethodConfig("cutout", "Cutout [5]: pCE on cut-out slices, cut pixels unannotated (Table 2)", baseline="cutout"),
    MethodConfig("wsl4", "WSL4 = DMPLS [15]: dual-branch UNet, pCE + mixed pseudo-label Dice (Table 2)",
                 baseline="wsl4"),
    MethodConfig("cyclemix", "CycleMix [22], simplified: pCE + box-mix supervision + 0.1 unmix consistency (Table 2)",
                 baseline="cyclemix"),
    MethodConfig("nnpu", "nnPU [12]: pCE + one-vs-rest non-negative PU risk, class ratio given (Table 3)",
                 baseline="nnpu"),
    MethodConfig("cvir", "CVIR [7]: pCE + PU loss ignoring the top-prior unlabeled, class ratio given (Table 3)",
                 baseline="cvir"),
    MethodConfig("shapepu", "ShapePU [23]: pCE + PU marginal loss with an EM class ratio + shape consistency "
                 "(Table 2)", baseline="shapepu"),
)
METHODS["modelmix"] = METHODS["#4"]


def get_method(name: str) -> MethodConfig:
    """Return the method called ``name``; raise :class:`ConfigError` listing the known names."""
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"--method: unknown method {name!r}; known methods: {', '.join(METHODS)}") from None


def get_core(name: str) -> CoreConfig:
    """Return the core preset called ``name``; raise :class:`ConfigError` listing the known presets."""
    try:
        return CORE_PRESETS[name]
    except KeyError:
        raise ConfigError(f"--preset: unknown preset {name!r}; known presets: {', '.join(CORE_PRESETS)}") from None


def check_method_tasks(method: MethodConfig, tasks: list[str] | tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` unless ``tasks`` are distinct and at least ``method.min_tasks`` many."""
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"--tasks: duplicate task in {','.join(tasks)}")
    if len(tasks) < method.min_tasks:
        raise ConfigError(
            f"--tasks: method {method.name!r} needs at least {method.min_tasks} tasks, got {','.join(tasks) or 'none'}"
        )
