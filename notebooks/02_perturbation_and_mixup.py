# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: accelerator,colab,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Perturbations: cutout, mixup, augmentation and dropout
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/modelmix-lite/modelmix_lite/blob/main/notebooks/02_perturbation_and_mixup.ipynb)
#
# Before ModelMix mixes *models*, each task's model $f_i = h_i(e_i(x))$ is trained under perturbations of its
# *images* and of *itself* (paper §2.1). With five scribbled volumes per task, a network can memorise the few
# annotated pixels; perturbations make it see many versions of each slice and ask its predictions to change
# the way the input changed. This notebook takes each perturbation in turn, on phantom slices of every task
# (ACDC cine, MSCMR LGE, MyoPS C0/DE/T2), and shows what it does to the image **and to the scribble labels**:
#
# 1. cutout, $x^c = \mathbb 1_c \odot x$, and who owns the pixels it hides;
# 2. mixup of two images of the same dataset, $x' = \alpha x_1^c + (1-\alpha) x_2^c$, $\alpha \sim \mathrm{Beta}$;
# 3. what the invariance loss $\mathcal L_{\text{inv}}$ (Eq. 1) compares;
# 4. geometric augmentation, and why its padding is not background;
# 5. why images of *different* tasks are never mixed;
# 6. dropout, the model-level perturbation.
#
# The library computes, the notebook explains: perturbations are in `modelmix_lite.perturb`, losses in
# `modelmix_lite.losses`, figures in `modelmix_lite.viz`.
#
# {glue:md}`runtime`

# %% tags=["hide-input"]
import os
import subprocess
import sys

if "google.colab" in sys.modules and not os.path.isdir("/content/modelmix_lite"):  # Colab: once per runtime
    # a shallow clone (the notebooks, the committed results), installed without touching Colab's torch and numpy
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/modelmix-lite/modelmix_lite",
                    "/content/modelmix_lite"], check=True)
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", "-e", "/content/modelmix_lite"], check=True)
    subprocess.run([*pip, "nibabel>=5.0", "seaborn>=0.13", "scikit-image>=0.21", "tqdm", "pyyaml", "pooch>=1.8"],
                   check=True)
if "google.colab" in sys.modules:
    sys.path.insert(0, "/content/modelmix_lite")  # the editable install is seen from the next restart on
    os.chdir("/content/modelmix_lite/notebooks")  # paths such as results_dir="../results" resolve as in the book

# %% tags=["parameters"]
profile = os.environ.get("MODELMIX_PROFILE", "cpu")  # smoke | cpu | cpu_long | gpu | paper
data_root = None  # None: the synthetic phantom (generated on first use); or a folder with the real datasets
seed = 0
slice_size = 128  # network input side S (the paper uses 256; everything here is cheap at 128)
batch_size = 8  # annotated slices drawn per task
cutout_fraction = 0.25  # cutout side as a fraction of S, for the figures (the released code: 32 px of 256)
mixup_concentration = 0.5  # a of alpha ~ Beta(a, a) (the released code: 0.5; the paper gives no value)
width = 16  # channels of the first UNet block (the paper: 64)
n_dropout_samples = 8  # stochastic forward passes in the dropout section

# %%
from modelmix_lite.tutorial import state_runtime

state_runtime('02_perturbation_and_mixup')

# %%
import numpy as np
import pandas as pd
import torch
from scipy.stats import beta as beta_distribution

from modelmix_lite.perturb import scribbled_pixels_cut
from modelmix_lite.probes import dropout_predictions
from modelmix_lite import tutorial
from modelmix_lite.config import FOV_MM
from modelmix_lite.data.readers import load_split
from modelmix_lite.data.slices import SliceDataset
from modelmix_lite.data.tasks import TASKS, UNANNOTATED
from modelmix_lite.losses import invariance_loss
from modelmix_lite.models import TaskModelSet, UNet, as_model_input
from modelmix_lite.perturb import (
    apply_cutout,
    augment,
    cutout_mask,
    mixup,
    partner_index,
    rotation_mask,
)
from modelmix_lite.draws import sample_beta
from modelmix_lite.viz import (
    plot_augmentations,
    plot_beta_densities,
    plot_cutout,
    plot_domain_gap,
    plot_dropout_variance,
    plot_invariance,
    plot_mixup_grid,
)

profile = tutorial.resolve_profile(profile)
root = tutorial.resolve_data_root(data_root, profile, seed)
generator = torch.Generator().manual_seed(seed)  # every random draw of the library comes from here
rng = np.random.default_rng(seed)
print(f"profile: {profile}, data root: {tutorial.display_path(root)}")
for key, value in tutorial.describe_environment().items():
    print(f"{key:>14}: {value}")

# %% [markdown]
# ## Slices of every task
#
# We read the training split of each task and turn every volume into network slices with
# `modelmix_lite.data.slices.SliceDataset`: intensities scaled to $[0, 1]$ per volume, each slice resampled to
# a fixed pixel size and cut to its centred $S \times S$ window, the target being the **scribble** (class indices, and
# `UNANNOTATED` = 255 where nobody drew). MyoPS slices have three channels (C0, DE, T2); ACDC and MSCMR one.
# From each task we draw a batch of annotated slices.

# %%
spacing_mm = FOV_MM / slice_size  # the same 224 mm field of view as the training profiles
datasets = {task: SliceDataset(load_split(task, root, "train"), size=slice_size, target="scribble", spacing_mm=spacing_mm)
            for task in TASKS}
batches = {}
for task, ds in datasets.items():
    pick = rng.choice(np.flatnonzero(ds.annotated), size=min(batch_size, int(ds.annotated.sum())), replace=False)
    batches[task] = (torch.from_numpy(ds.images[pick]), torch.from_numpy(ds.targets[pick]).long())
pd.DataFrame(
    {
        "slices": [len(ds) for ds in datasets.values()],
        "annotated slices": [int(ds.annotated.sum()) for ds in datasets.values()],
        "batch (B, C, H, W)": [tuple(x.shape) for x, _ in batches.values()],
    },
    index=list(datasets),
)

# %% [markdown]
# ## 1. Cutout: hide a square, and say nothing about it
#
# For each image the paper "randomly cut[s] out a square area of pixels": with a binary mask $\mathbb 1_c$
# that is 0 inside the square, $x^c = \mathbb 1_c \odot x$ (§2.1). The network must then segment a heart of
# which a part is missing, which discourages it from relying on any one small region.
#
# `modelmix_lite.perturb.cutout_mask` draws the square (uniform centre, clipped at the borders) and
# `modelmix_lite.perturb.apply_cutout` multiplies it in. The interesting question is the **labels**. The
# paper says nothing about them. The released ACDC/MSCMR pipeline sets the cut pixels of the scribble to 0,
# which there means **background** (reference notes §4): wherever the square lands on a scribbled LV or MYO
# stroke, the network is told that this black square *is* background, although the heart is there, only
# hidden. (The MyoPS pipeline writes 0 too, but raw 0 in a MyoPS scribble means unannotated.) The library
# marks cut pixels `UNANNOTATED` (the default `label_fill`), so the supervised losses ignore them;
# `label_fill=0` reproduces the released ACDC/MSCMR code (`CoreConfig.cutout_label_fill` in
# `modelmix_lite.methods`).
#
# Below, for each task, the draw of the batch whose square hides the most scribbled foreground: the third
# column is what the library trains with (the strokes simply stop at the square), the fourth what the released
# code trains with (the square is painted with the background colour).

# %%
side = round(cutout_fraction * slice_size)
shown = {}
for task, (x, y) in batches.items():
    masks = cutout_mask(len(x), slice_size, slice_size, side, generator=generator)
    i = int(scribbled_pixels_cut(y, masks).argmax())  # the draw that hides the most scribbled foreground
    shown[task] = (x[i], y[i], masks[i])
fig = plot_cutout(
    images=[x for x, _, _ in shown.values()],
    scribbles=[y for _, y, _ in shown.values()],
    masks=[m for _, _, m in shown.values()],
    tasks=list(shown),
)

# %% [markdown]
# How often does this happen at the released code's size, a 32-pixel square on a 256-pixel slice (1/8 of the
# side)? We cut every annotated slice of each task many times and count the squares that would relabel at
# least one scribbled foreground pixel as background (with these phantom scribbles; real ones differ):

# %%
released_side = round(slice_size / 8)
n_draws = 50
rows = []
for task, ds in datasets.items():
    y = torch.from_numpy(ds.targets[ds.annotated]).long().repeat(n_draws, 1, 1)
    hits = scribbled_pixels_cut(y, cutout_mask(len(y), slice_size, slice_size, released_side, generator=generator))
    rows.append({"task": task, "cutouts": len(y), "hit scribbled foreground": (hits > 0).float().mean().item(),
                 "foreground px relabelled per hit": hits[hits > 0].float().mean().item()})
cut_stats = pd.DataFrame(rows).set_index("task")
tutorial.glue("cut_hit_acdc", cut_stats.loc["acdc", "hit scribbled foreground"])
tutorial.glue("cut_hit_mscmr", cut_stats.loc["mscmr", "hit scribbled foreground"])
cut_stats.style.format({"hit scribbled foreground": "{:.1%}", "foreground px relabelled per hit": "{:.1f}"})

# %% [markdown]
# With the released settings {glue:text}`cut_hit_acdc:.0%` of the ACDC cutouts (MSCMR:
# {glue:text}`cut_hit_mscmr:.0%`) turn scribbled heart pixels into background labels. Each hit is a wrong
# label, and it teaches the very shortcut cutout should remove: "a dark square is background".

# %% [markdown]
# ## 2. Mixup within a dataset
#
# The second image-level perturbation blends two cut-out images **of the same dataset**:
#
# $$x' = \alpha\, x_1^c + (1-\alpha)\, x_2^c, \qquad \alpha \sim \mathrm{Beta}(a, a).$$
#
# The paper does not give $a$; the released code uses $a = 0.5$, one $\alpha$ per sample. The shape of
# $\mathrm{Beta}(a, a)$ decides what the mixed images look like: for $a < 1$ the density is U-shaped, so many
# mixes are *nearly* one of the two images with a faint ghost of the other; $a = 1$ is uniform; $a > 1$
# concentrates at half-and-half blends. The histogram checks `modelmix_lite.draws.sample_beta`, the
# one Beta sampler that `modelmix_lite.perturb.mixup` and Eq. 5 both use, against the density.

# %%
draws = sample_beta(mixup_concentration, (20_000,), "cpu", generator)
fig = plot_beta_densities((0.2, 0.5, 1.0, 2.0, 5.0), samples={mixup_concentration: draws})
extreme = 2 * beta_distribution.cdf(0.1, mixup_concentration, mixup_concentration)
tutorial.glue("beta_a", mixup_concentration)
tutorial.glue("beta_extreme", extreme)
tutorial.glue("beta_extreme_drawn", ((draws < 0.1) | (draws > 0.9)).float().mean().item())

# %% [markdown]
# With $a =$ {glue:text}`beta_a`, {glue:text}`beta_extreme:.0%` of all mixes (drawn:
# {glue:text}`beta_extreme_drawn:.0%`) give more than 90 % of the weight to one image.
#
# **Who is mixed with whom.** Both images come from the same batch. `modelmix_lite.perturb.partner_index`
# gives each slice a partner. Its default is a random *derangement*: a permutation without fixed points, so
# no slice is ever mixed with itself. The released code pairs slice $i$ with slice $B-1-i$
# (`scheme="flip"`), which leaves the middle slice of an odd batch alone: its "mixup" is the identity.

# %%
print("derangement:", partner_index(5, generator).tolist())
print("flip       :", partner_index(5, scheme="flip").tolist(), "<- slice 2 is its own partner")

# %% [markdown]
# The grid shows $x' = \alpha x_1^c + (1-\alpha) x_2^c$ for fixed values of $\alpha$, for a pair of cut-out
# slices of each task (MyoPS: the C0 channel; all three channels are mixed alike). Two hearts of different
# size and position overlap: the result is not a realistic image, but every pixel of it is a plausible mixture
# of tissue from one dataset, and we know exactly how the two segmentations should combine.

# %%
cut = {}
for task, (x, y) in batches.items():
    masks = cutout_mask(len(x), slice_size, slice_size, side, generator=generator)
    cut[task] = apply_cutout(x, masks, y)  # (x^c, scribble with the square unannotated)
partners = {task: partner_index(len(x), generator) for task, (x, _) in cut.items()}
fig = plot_mixup_grid(
    x1=[x[0] for x, _ in cut.values()],
    x2=[x[partners[task][0]] for task, (x, _) in cut.items()],
    tasks=list(cut),
)

# %% [markdown]
# ## 3. What $\mathcal L_{\text{inv}}$ compares
#
# Mixup usually also mixes the labels. ModelMix instead asks the *segmentation* to follow the mix (Eq. 1,
# after CycleMix):
#
# $$\mathcal L_{\text{inv}} = -\cos\Big(f(x'),\ \alpha f(\mathbb 1_{c_1} \odot x_1) + (1-\alpha) f(\mathbb 1_{c_2} \odot x_2)\Big).$$
#
# $f$ is the class-probability map. The model runs on the two cut-out images and on their mix; the mixed
# image's prediction should be the same mix of the two predictions. No label enters, so the term uses every
# pixel of every slice, annotated or not. `modelmix_lite.losses.invariance_loss` computes it from the three
# probability maps; nothing is detached, so both sides receive gradient, as in the released code.
#
# An untrained model shows what is compared: the ACDC model of a `modelmix_lite.models.TaskModelSet` (one
# UNet per task, as ModelMix trains them), in eval mode. Below: the three inputs, their predictions coloured
# as $\sum_c p_c \cdot \mathrm{colour}_c$ (`modelmix_lite.viz.style.probability_rgb`: a confident pixel shows its
# class colour, an undecided one a blend), the target $\alpha f(x_1^c) + (1-\alpha) f(x_2^c)$, and the cosine
# of $f(x')$ and the target at each pixel.

# %%
task = "acdc"
model_set = TaskModelSet(list(TASKS), base=width, generator=torch.Generator().manual_seed(seed)).eval()
x_c, _ = cut[task]
x_mix, lam = mixup(x_c, x_c[partners[task]], mixup_concentration, generator)
with torch.no_grad():
    p = model_set(task, as_model_input(x_c)).softmax(dim=1)
    p_mix = model_set(task, as_model_input(x_mix)).softmax(dim=1)
p_partner = p[partners[task]]
inv = {r: invariance_loss(p_mix, p, p_partner, lam, reduce=r).item() for r in ("pixel", "spatial", "flat")}
fig = plot_invariance(x_c[0], x_c[partners[task][0]], x_mix[0], p[0], p_partner[0], p_mix[0], float(lam[0]), task,
                      loss=inv["pixel"])
tutorial.glue("inv_pixel", inv["pixel"])
tutorial.glue("p_max", p.max(dim=1).values.mean().item())
tutorial.glue("p_uniform", 1 / TASKS[task].n_classes)
pd.Series(inv, name="L_inv of the batch").to_frame()

# %% [markdown]
# The mixed prediction $f(x')$ shows both hearts, like the target, but not exactly: a network is nonlinear, so
# it does not follow the mix by itself, and the cosine map shows where it departs. The numbers are small for
# a reason worth knowing. The untrained network is nearly undecided (its largest class probability is
# {glue:text}`p_max:.2f` on average; a uniform guess gives {glue:text}`p_uniform:.2f`), and two such vectors
# are almost parallel whatever they say: the batch's $\mathcal L_{\text{inv}}$ is {glue:text}`inv_pixel:.4f`,
# next to its minimum $-1$. The term starts to matter once the scribble loss has made the predictions
# confident; then a prediction that does not follow the mix costs much more.
#
# *Which* vectors the cosine compares is a choice the paper leaves open (the `reduce` argument of
# `modelmix_lite.losses.cosine_loss`): `"pixel"` compares the class vector of each pixel (the map above; the
# `paper` preset's `CoreConfig.cos_reduce`, argued for in notebook 04); `"spatial"` compares each class's whole
# $H \times W$ map, as the released ACDC/MSCMR code does (the `released_code` preset); `"flat"` compares the whole
# $C \cdot H \cdot W$ map per sample, as the released MyoPS code does. The table gives all three for the same batch.
#
# Two cautions. A constant prediction satisfies Eq. 1 perfectly, so $\mathcal L_{\text{inv}}$ is only useful
# next to the scribble loss, which stops the network from predicting the same thing everywhere. And the
# released code adds a mixup cross-entropy against mixed scribbles (`modelmix_lite.losses.mixup_cross_entropy`,
# `CoreConfig.mixup_ce`) that is not in Eq. 1; it also has no cutout loss of its own: cutout lives in its data
# pipeline (reference notes, disagreement 6).

# %% [markdown]
# ## 4. Geometric augmentation: rotate, flip, zoom, and pad with "unknown"
#
# The training batches are also rotated, flipped and cropped (§3.1). `modelmix_lite.perturb.augment` draws one
# affine map per slice (angle, two flips, a zoom $s$: $s < 1$ crops and enlarges, $s > 1$ shrinks the slice
# into the frame) and resamples the image bilinearly and every label map with nearest neighbour, so labels
# keep their exact values. Pixels that come from **outside** the slice are 0 in the image and `UNANNOTATED`
# in every label map. Padding is not background: a zoomed-out or rotated slice has empty corners that no
# annotator has seen.
#
# To *see* the padding we pass a third label map of zeros: after the warp it is `UNANNOTATED` exactly where
# a pixel came from outside. Shown: one ACDC slice with its ground truth (filled) and scribble (strokes), and
# five augmentations of it, padding in orange.

# %%
gt = SliceDataset(load_split(task, root, "train"), size=slice_size, target="label", spacing_mm=spacing_mm)
i = int(np.flatnonzero(datasets[task].annotated)[len(np.flatnonzero(datasets[task].annotated)) // 2])
n_aug = 5
image = torch.from_numpy(datasets[task].images[i]).expand(n_aug, -1, -1, -1)
scribble = torch.from_numpy(datasets[task].targets[i]).long().expand(n_aug, -1, -1)
label = torch.from_numpy(gt.targets[i]).long().expand(n_aug, -1, -1)
aug_image, (aug_scribble, aug_label, outside) = augment(image, [scribble, label, torch.zeros_like(scribble)], generator)
padding = outside == UNANNOTATED
fig = plot_augmentations(
    torch.cat([image[:1], aug_image]),
    torch.cat([scribble[:1], aug_scribble]),
    torch.cat([torch.zeros_like(padding[:1]), padding]),
    task,
    labels=torch.cat([label[:1], aug_label]),
    titles=["original"] + [f"augmentation {k + 1}" for k in range(n_aug)],
)
tutorial.glue("padding_fraction", padding.float().mean().item())
print("scribble values before:", sorted(scribble.unique().tolist()), " after:", sorted(aug_scribble.unique().tolist()))

# %% [markdown]
# (Black bands beside the original slice are not padding of this kind: where a scan's field of view is smaller
# than the window, `SliceDataset` padded it, and the warp moves those bands with the image.)
#
# On average {glue:text}`padding_fraction:.0%` of the augmented pixels are padding; had they been labelled
# background, the ground truth of a zoomed-out slice would claim a background frame around the image. The
# scribble keeps its class values (nearest-neighbour resampling invents no new ones).
#
# The released code also rotates the *virtual* model's input by a random angle and rotates its prediction
# back before comparing it with the host model's (reference notes §2 and disagreement 4; not in the paper,
# `CoreConfig.rotate_virtual`). Rotating a square image there and back loses its corners:

# %%
kept = rotation_mask((1, 1, slice_size, slice_size), 45.0).mean().item()
tutorial.glue("rotation_kept", kept)
print(f"45° there and back keeps {kept:.1%} of the pixels")

# %% [markdown]
# Only {glue:text}`rotation_kept:.0%` of the pixels survive a 45° rotation and back. The released code compares
# the zero corners with the host's prediction all the same; the library's training objective leaves them out
# (the `mask` of `modelmix_lite.losses.vicinal_reg_loss`).

# %% [markdown]
# ## 5. Why images of different tasks are never mixed
#
# Mixup is applied *within* each dataset. The paper gives two reasons not to blend across tasks (§1), and
# both are visible.
#
# **The domain gap.** Cine MRI (ACDC) and LGE MRI (MSCMR) show the same anatomy with different contrast: in
# cine the blood pool is bright and the myocardium dark, in LGE healthy myocardium is nulled to black and scar
# lights up. A blend of the two is an image that no scanner produces, and its intensity distribution belongs
# to neither dataset:

# %%
fig = plot_domain_gap({"acdc": torch.from_numpy(datasets["acdc"].images),
                       "mscmr": torch.from_numpy(datasets["mscmr"].images)})

# %% [markdown]
# **The label sets differ.** Mixing images means mixing their labels too, and that needs one class list.
# The tasks' class lists, as `modelmix_lite.data.tasks.TASKS` defines them:

# %%
pd.DataFrame({name: pd.Series(spec.classes) for name, spec in TASKS.items()}).fillna("").rename_axis("class id")

# %% [markdown]
# Class 1 is RV in ACDC and MSCMR but MYO in MyoPS, where the RV is not a target and is folded into
# background. An ACDC RV blended with a MyoPS slice would have to be "RV" and "background" at once, and edema
# and scar have no counterpart in ACDC at all. So each task keeps its own images, labels and decoder, and
# ModelMix shares knowledge between tasks by mixing **encoder parameters** instead (Eq. 5, the next notebook).

# %% [markdown]
# ## 6. Model-level perturbation: dropout
#
# The paper perturbs the model itself with dropout in each encoder: "a dropout layer (with a ratio of 0.5)
# was incorporated before each convolutional block" (§3.1). In training mode every forward pass drops a
# different random half of the features entering the block, so the network sees a slightly different model
# each time and cannot lean on any single feature. The released code uses much milder dropout between the
# two convolutions of each encoder block, $p = [.05, .1, .2, .3, .5]/3$ (reference notes §1). `UNet` offers
# both (`dropout="paper"` or `"released"`); block 1 never drops input pixels, because that would be an image
# corruption, not a model perturbation.
#
# `modelmix_lite.probes.dropout_predictions` runs one slice `n_dropout_samples` times through the same untrained
# weights with only the dropout layers active; the spread of the predictions is the perturbation each training
# step sees.

# %%
torch.manual_seed(seed)  # dropout masks come from torch's global RNG
x = as_model_input(batches[task][0][:1])
samples = {}
for setting in ("paper", "released"):
    net = UNet(3, TASKS[task].n_classes, base=width, dropout=setting, generator=torch.Generator().manual_seed(seed))
    samples[setting] = dropout_predictions(net, x, n_dropout_samples)[:, 0]
fig = plot_dropout_variance(batches[task][0][0], samples, task)
tutorial.glue("std_paper", samples["paper"].std(dim=0, correction=0).mean().item())
tutorial.glue("std_released", samples["released"].std(dim=0, correction=0).mean().item())

# %% [markdown]
# The paper's setting moves the probabilities by {glue:text}`std_paper:.3f` on average (standard deviation
# over passes), the released code's by {glue:text}`std_released:.3f`: the two "ModelMix" implementations
# regularise their encoders with very different strength, which is worth knowing when comparing their results.
#
# ## Summary
#
# | perturbation | library | paper | released code |
# |---|---|---|---|
# | cutout $x^c = \mathbb 1_c \odot x$ | `perturb.cutout_mask`, `perturb.apply_cutout` | a square, labels unstated | 32 px of 256; cut labels → 0 (ACDC/MSCMR: background) |
# | mixup $x' = \alpha x_1^c + (1-\alpha) x_2^c$ | `perturb.mixup`, `perturb.partner_index` | same dataset, $\alpha \sim$ Beta | Beta(0.5, 0.5); partner $B-1-i$ |
# | $\mathcal L_{\text{inv}}$ (Eq. 1) | `losses.invariance_loss` | cosine, vectors unstated | per-class spatial (ACDC/MSCMR), flat (MyoPS); + mixup CE |
# | rotation / flip / crop | `perturb.augment`, `perturb.rotate` | §3.1, details unstated | zero padding (ACDC/MSCMR labels: background); virtual model on rotated input |
# | dropout | `models.UNet(dropout=...)` | 0.5 before each block | $[.05, .1, .2, .3, .5]/3$ inside each block |
#
# Where the paper is silent about labels, the library leaves unseen pixels (cut or padded) unannotated.
# `CORE_PRESETS["released_code"]` in `modelmix_lite.methods` switches the cutout labels, the mixup partner,
# the mixup cross-entropy, the rotated virtual model and the dropout to the released
# code's behaviour; augmentation padding stays unannotated in both presets.
