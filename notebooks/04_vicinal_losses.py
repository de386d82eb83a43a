# ---
# jupyter:
#   accelerator: GPU
#   colab:
#     gpuType: T4
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
# # Vicinal losses: what ModelMix minimises
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/modelmix-lite/modelmix_lite/blob/main/notebooks/04_vicinal_losses.ipynb)
#
# ModelMix trains one model $f_i = h_i(e_i(x))$ per task and, every iteration, a *virtual* model
# $\tilde f_{ij} = h_i(\tilde e)$ whose encoder has one layer interpolated between $e_i$ and $e_j$ (Eq. 5). The
# objective (Eq. 9) is
#
# $$\mathcal L = \mathcal L_{\text{inv}} + \mathcal L_{\text{vicinal-reg}} + \mathcal L_{\text{vicinal-sup}},$$
#
# with the mix-invariance loss of Eq. 1, the cosine consistency of $\tilde f_{ij}$ with its host $f_i$ (Eq. 6),
# and the scribble loss of both (Eq. 7), itself cross-entropy plus Dice on the scribbles (Eq. 8). This notebook
# evaluates every term on one phantom batch of two tasks, MyoPS and MSCMRseg, and then asks the questions that
# decide what training actually does:
#
# 1. the value of each loss of `modelmix_lite.losses` on a real batch;
# 2. why Eq. 8's Dice runs on annotated pixels only, and what the released code's unmasked Dice does instead;
# 3. which vectors the cosine of Eqs. 1 and 6 compares, and why that matters;
# 4. the released code's MyoPS $\mathcal L_{\text{vicinal-reg}}$, which is a constant;
# 5. which parameters each term trains, in the `paper` and `released_code` presets;
# 6. the loss curves of a short ModelMix run.
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
steps = None  # optimizer steps of the ModelMix run; None: the profile's, the run notebook 05 then reuses

# %%
from modelmix_lite.tutorial import state_runtime

state_runtime('04_vicinal_losses')

# %%
import numpy as np
import pandas as pd
import torch

from modelmix_lite.config import PROFILES, resolve_config
from modelmix_lite.data.readers import load_split
from modelmix_lite.data.tasks import UNANNOTATED, get_task
from modelmix_lite.losses import (
    degenerate_reg_loss,
    dice_loss,
    invariance_loss,
    partial_cross_entropy,
    supervised_loss,
    total_loss,
    vicinal_reg_loss,
    vicinal_sup_loss,
)
from modelmix_lite.methods import CORE_PRESETS, METHODS
from modelmix_lite.mixing import mixable_layers, virtual_forward
from modelmix_lite.objective import ModelMixObjective, task_pairs
from modelmix_lite.perturb import apply_cutout, cutout_mask, mixup, partner_index, rotate, rotation_mask
from modelmix_lite.probes import (
    cosine_examples,
    cosine_reduction_frame,
    gradient_norms_by_group,
    gradient_share,
    pixel_gradient_norm,
)
from modelmix_lite.rundir import Run
from modelmix_lite.sampling import example_batch
from modelmix_lite.tutorial import display_path, glue, resolve_data_root, resolve_profile, runs_dir, train_or_load
from modelmix_lite.viz import plot_cosine_examples, plot_gradient_flow, plot_gradient_maps, plot_loss_terms


profile = resolve_profile(profile)
steps = steps or PROFILES[profile].steps
root = resolve_data_root(data_root, profile, seed)
tasks = ["myops", "mscmr"]
print(f"profile: {profile}, data root: {display_path(root)}, steps: {steps}")

# %% [markdown]
# ## A short ModelMix run
#
# Losses of untrained networks say little: with identical initial encoders (as in the released code), a virtual
# model *is* its host. So we first train ModelMix (Table 1 row #4, {py:func}`modelmix_lite.train.train` with
# the `paper` core preset) on MyoPS + MSCMRseg, and look at its models. It is the ModelMix run of
# {doc}`05_training`, kept in that notebook's run folder: whichever notebook runs first trains it, the other
# loads it ({py:func}`modelmix_lite.tutorial.train_or_load`). The run writes `log.jsonl`, whose curves close
# the notebook.

# %%
config = resolve_config(profile, {"steps": steps, "seed": seed})
run = runs_dir("05_training", profile) / ("ablation4_paper" if steps == PROFILES[profile].steps
                                          else f"ablation4_paper_{steps}_steps")
trained = train_or_load(config, root, run, "#4", tasks)
models = Run(run).models("last.pt").train()  # train mode: dropout and batch statistics, as in a step
print(f"{display_path(run)} ({'trained' if trained else 'loaded'}): {config.size}×{config.size} slices, UNet base {config.base}, "
      f"{steps} steps")

# %% [markdown]
# ## 1. Every loss on one batch
#
# {py:func}`modelmix_lite.sampling.example_batch` takes a fixed batch of each task in the form the objective takes
# it: the first rows are slices of the scribbled subjects (the training split's), the others unlabeled slices,
# whose targets are all `UNANNOTATED`. Supervised terms use the scribbled rows only; the unsupervised ones
# ($\mathcal L_{\text{inv}}$, $\mathcal L_{\text{vicinal-reg}}$) use every row.
#
# For each ordered task pair $(i, j)$ we build the inputs of Eqs. 1 and 6–8 by hand: a cutout
# ({py:func}`modelmix_lite.perturb.apply_cutout`), a mixup partner ({py:func}`modelmix_lite.perturb.mixup`),
# and the virtual model $\tilde f_{ij}$ with one encoder conv mixed at $\lambda = 0.5$
# ({py:func}`modelmix_lite.mixing.virtual_forward`). Then each function of `modelmix_lite.losses` computes its
# equation.

# %%
batches = {task: example_batch(task, root, config.size, seed=seed, spacing_mm=config.spacing_mm) for task in tasks}
generator = torch.Generator().manual_seed(seed)  # every random draw below comes from here (or from the seed)
torch.manual_seed(seed)  # dropout
layer, lam = mixable_layers(models.models[tasks[0]])[4], 0.5
values, outputs = {}, {}
with torch.no_grad():  # values only: the gradients come in sections 2, 4 and 5
    for i, j in task_pairs(tasks, "all"):
        image, target, n = batches[i]["image"], batches[i]["target"], batches[i]["n_scribbled"]
        cut_side = round(config.core.with_physical_cutout(config.fov_mm).cutout_size * config.size)
        cut = cutout_mask(len(image), config.size, config.size, cut_side, 1.0, generator)
        x, y = apply_cutout(image, cut, target)
        partner = partner_index(len(x), generator)
        x_mix, alpha = mixup(x, x[partner], config.core.mixup_alpha, generator)
        logits, logits_v = models(i, x), virtual_forward(models.models[i], models.models[j], layer, lam, x)
        p, p_v = logits.softmax(1), logits_v.softmax(1)
        terms = {
            "L_inv (Eq. 1)": invariance_loss(models(i, x_mix).softmax(1), p, p[partner], alpha),
            "L_vicinal-reg (Eq. 6)": vicinal_reg_loss(p_v, p),
            "L_vicinal-sup (Eq. 7)": vicinal_sup_loss(logits_v[:n], logits[:n], y[:n]),
        }
        values[f"host {i}, mixed with {j}"] = {
            "pCE (Eq. 8, first term)": float(partial_cross_entropy(logits[:n], y[:n])),
            "Dice, annotated pixels (Eq. 8, second term)": float(dice_loss(logits[:n], y[:n])),
            "L_sup = pCE + Dice (Eq. 8)": float(supervised_loss(logits[:n], y[:n])),
            **{name: float(term) for name, term in terms.items()},
            "L (Eq. 9)": float(total_loss(terms)),
        }
        outputs[i] = {"x": x, "y": y, "n": n, "logits": logits}
loss_table = pd.DataFrame(values)
glue("mixed_layer", layer.name, display=False)
glue("vreg_myops", float(loss_table.loc["L_vicinal-reg (Eq. 6)"].iloc[0]), display=False)
loss_table.round(4)

# %% [markdown]
# The mixed layer is {glue:text}`mixed_layer`. The cosine terms are negative similarities, so their best value is
# $-1$: the MyoPS virtual model agrees with its host to {glue:text}`vreg_myops:.3f`. $\mathcal L_{\text{sup}}$ is
# the sum of its two rows, $\mathcal L_{\text{vicinal-sup}}$ holds one $\mathcal L_{\text{sup}}$ of the virtual
# model and one of the host, and {py:func}`modelmix_lite.losses.total_loss` adds the three terms of Eq. 9 with
# weight 1, as the paper and the released code do. Training sums this column over the tasks
# ({py:class}`modelmix_lite.objective.ModelMixObjective` does all of the above, with a random layer and
# $\lambda \sim \mathrm{Beta}$ per pair and step).

# %% [markdown]
# ## 2. Eq. 8 on annotated pixels only
#
# Eq. 8 writes $\mathcal L_{\text{sup}}$ with the scribble $y$, "calculated for annotated pixels". For the
# cross-entropy this is the usual partial cross-entropy. For the Dice term
# $1 - 2\sum p\,y / (\sum p + \sum y)$ it means that the sums run over scribbled pixels only
# ({py:func}`modelmix_lite.losses.dice_loss` with `on="annotated"`). The released code sums over **all**
# pixels (reference notes §3, disagreement 8): where nobody drew, $y = 0$, so those pixels enter only through
# $\sum p$ in the denominator. Two ways of averaging the classes matter here: one Dice per class present in the
# scribbles (`average="present"`, the `paper` preset) or one ratio pooled over the classes (`"pooled"`, the
# released `multiDice`). We differentiate each variant with respect to the host logits of a scribbled MyoPS
# slice and draw $\lVert \partial \mathcal L / \partial z \rVert$ per pixel
# ({py:func}`modelmix_lite.probes.pixel_gradient_norm`).

# %%
myops = batches["myops"]
n = myops["n_scribbled"]
logits = models("myops", myops["image"])[:n].detach()
target = myops["target"][:n]
variants = {
    f"on={on}, average={average}": lambda z, on=on, average=average: dice_loss(z, target, on=on, average=average)
    for average in ("present", "pooled")
    for on in ("annotated", "all")
}
grads = {name: pixel_gradient_norm(fn, logits) for name, fn in variants.items()}
dice_table = pd.DataFrame(
    {
        "Dice loss": {name: float(fn(logits)) for name, fn in variants.items()},
        "gradient on unannotated pixels (%)": {name: 100 * gradient_share(g, target) for name, g in grads.items()},
        "largest gradient on a scribble": {name: float(g[target != UNANNOTATED].max()) for name, g in grads.items()},
    }
)
for key, name in [("present_all", "on=all, average=present"), ("pooled_all", "on=all, average=pooled"),
                  ("present_ann", "on=annotated, average=present")]:
    glue(f"dice_{key}", float(dice_table.loc[name, "Dice loss"]), display=False)
    glue(f"share_{key}", float(dice_table.loc[name, "gradient on unannotated pixels (%)"] / 100), display=False)
glue("annotated_fraction", float((target != UNANNOTATED).float().mean()), display=False)
dice_table.round(5)

# %%
panels = {name.replace(", ", "\n"): g[0] for name, g in grads.items()}
plot_gradient_maps(panels, myops["image"][0, 1].numpy(), target[0].numpy(), "myops");

# %% [markdown]
# Only {glue:text}`annotated_fraction:.1%` of these pixels are scribbled. Three things follow from the figure
# and the table:
#
# * **Masked (Eq. 8).** Exactly zero gradient off the scribbles: the loss says nothing about pixels nobody
#   labelled, and the Dice ({glue:text}`dice_present_ann:.3f`) measures the fit to the scribbles.
# * **Unmasked, per class.** {glue:text}`share_present_all:.0%` of the gradient lands on unannotated pixels.
#   There, $\partial \mathcal L / \partial p_c = \mathrm{Dice}_c / (|P|\,(\sum p_c + \sum y_c))$ for each of
#   the $|P|$ scribbled classes $c$: the loss pushes their probability down everywhere nobody drew, hardest for
#   the classes with the smallest denominator, the small structures (scar, edema). This is a shrinking prior,
#   not supervision.
# * **Unmasked, pooled (released code).** The gradient off the scribbles vanishes again
#   ({glue:text}`share_pooled_all:.1%`, rounding error), for a reason worth knowing. Summed over classes,
#   $\sum_c p_c = 1$ at every pixel, so the pooled denominator $\sum p + \sum y$ is the constant $M + N$
#   ($M$ pixels, $N$ of them scribbled). The loss is $1 - \frac{2N}{M + N}\,\overline{p_y}$, with
#   $\overline{p_y}$ the mean probability of the scribbled class on the scribbles. Masked and pooled, the same
#   loss is $1 - \overline{p_y}$. So the released Dice is a cross-entropy-like term scaled down by about twice
#   the scribbled fraction. Its value stays near 1 whatever the network does ({glue:text}`dice_pooled_all:.3f`
#   here; about 0.81 in the released training logs), and so does its gradient (last column).
#
# So the unmasked Dice is either a size prior or a weak cross-entropy, never the overlap score Eq. 8 describes.
# The `paper` preset uses `dice_on="annotated"`; `released_code` uses `"all"` with pooling.

# %% [markdown]
# ## 3. Which cosine? Pixel, spatial or flat
#
# Eqs. 1 and 6 write $-\tilde f \cdot f / (\lVert \tilde f \rVert \lVert f \rVert)$ for two probability maps
# $(C, H, W)$ without saying which vectors the cosine compares.
# {py:func}`modelmix_lite.losses.cosine_loss` offers three readings:
#
# * `"pixel"` (its default): the $C$-vector of class probabilities at each pixel, averaged over pixels;
# * `"spatial"` (the released ACDC/MSCMR code): each class map over the $H W$ pixels, averaged over classes;
# * `"flat"` (the released MyoPS mixup term): the whole $C H W$ map at once.
#
# {py:func}`modelmix_lite.probes.cosine_examples` builds a host prediction from a MyoPS ground-truth slice and
# three virtual predictions that differ from it in known ways.

# %%
myops_spec = get_task("myops")
case = load_split("myops", root, "train")[0]
scar, myo = myops_spec.classes.index("scar"), myops_spec.classes.index("MYO")
z = int(np.argmax((case.label == scar).sum(axis=(0, 1))))
examples = cosine_examples(case.label[..., z], myops_spec.n_classes, small=scar, neighbour=myo, seed=seed)
cosines = cosine_reduction_frame(examples)
for name, key in [("less confident", "soft"), ("small class lost", "lost"), ("small class everywhere", "flood")]:
    for reduce in ("pixel", "spatial"):
        glue(f"cos_{key}_{reduce}", float(cosines.loc[name, reduce]), display=False)
    glue(f"changed_{key}", float(cosines.loc[name, "argmax changed (%)"] / 100), display=False)
glue("cos_paper", CORE_PRESETS["paper"].cos_reduce, display=False)
glue("cos_released", CORE_PRESETS["released_code"].cos_reduce, display=False)
cosines.round(3)

# %%
plot_cosine_examples(examples, "myops");

# %% [markdown]
# Cosine *similarities* (1 = agreement). The three readings rank the examples differently:
#
# * **Less confident** (the host logits at temperature 2; no pixel changes class): the per-pixel cosine barely
#   moves ({glue:text}`cos_soft_pixel:.3f`), the spatial one drops to {glue:text}`cos_soft_spatial:.3f`.
#   A spatial cosine compares *where* each class's probability mass lies, normalised per class; a class absent
#   from most pixels has a map made of its floor probability, and raising that floor changes its direction.
# * **Scar lost** (the scar turns into myocardium, {glue:text}`changed_lost:.1%` of the pixels): spatial
#   {glue:text}`cos_lost_spatial:.3f`, pixel {glue:text}`cos_lost_pixel:.3f`. Normalising each class map gives
#   every class the weight $1/C$ however small it is, so the spatial cosine is the one that weighs small
#   structures up; the per-pixel cosine weighs them by their area, like the cross-entropy does.
# * **Scar everywhere** ({glue:text}`changed_flood:.0%` of the pixels change class): pixel
#   {glue:text}`cos_flood_pixel:.3f`, spatial still {glue:text}`cos_flood_spatial:.3f`. Probabilities are
#   positive, so a class-map cosine never gets near 0, and it is blind to rescaling: if the host predicts the
#   same distribution at every pixel of a slice, a virtual model that predicts any other constant distribution
#   scores a perfect spatial cosine of 1 while every pixel changes class.
#
# **Why `"pixel"` is the default of `cosine_loss`.** Eq. 6 asks the virtual model to *segment like* its host
# (§2.3: "consistent performance with individual models"). The per-pixel cosine is the reading that measures
# exactly that. Two probability vectors on the simplex are parallel only if they are equal, so its optimum is
# $\tilde f_{ij}(x) = f_i(x)$ at every pixel. Each pixel contributes a bounded term in $[0, 1]$ whose norms are at
# least $1/\sqrt C$ (no division by a near-zero norm), so the loss grows with how much of the segmentation
# disagrees. The spatial cosine's optimum is only $\tilde f_c \propto f_c$ per class, and it reacts more to
# confidence than to class changes. Its one real merit, class balance, is already provided by the per-class
# Dice in $\mathcal L_{\text{sup}}$. The flat cosine has the same optimum as the per-pixel one, but it couples
# all pixels into one number and weighs each pixel by its norm.
#
# Training takes the reduction from `CoreConfig.cos_reduce`: the `paper` preset uses this reading
# ({glue:text}`cos_paper`), the `released_code` preset the released code's ({glue:text}`cos_released`).

# %% [markdown]
# ## 4. The released MyoPS $\mathcal L_{\text{vicinal-reg}}$ is a constant
#
# In the released code the virtual model sees the batch rotated by a random angle, and its prediction is rotated
# back before the cosine (the corners lost on the way are zero vectors). For MyoPS the code reshapes both maps
# to $(B, 1, 5HW)$ and takes the cosine over `dim=1`, a dimension of size 1 (reference notes §3,
# disagreement 5). The cosine of two numbers is $ab / (|a|\,|b|) = \operatorname{sign}(a)\operatorname{sign}(b)$:
# 1 wherever both probabilities are positive (always, after a softmax) and 0 in the lost corners. The loss is
# therefore minus the fraction of pixels that survive the rotation, whatever the networks predict. Its derivative
# $\partial (ab/|a||b|) / \partial a = 0$ as well. We evaluate that line next to
# {py:func}`modelmix_lite.losses.vicinal_reg_loss` on the MyoPS virtual model, seen at 30°.

# %%
out = outputs["myops"]
angle = 30.0
host = out["logits"].softmax(1).detach()
x_rot = rotate(out["x"], angle, "nearest")
logits_rot = virtual_forward(models.models["myops"], models.models["mscmr"], layer, lam, x_rot).detach()
kept = rotation_mask(host.shape, angle)  # 0 in the lost corners


def back(z: torch.Tensor) -> torch.Tensor:
    """The virtual prediction rotated back, as the released code does."""
    return rotate(z.softmax(1), -angle, "nearest")


readings = {
    "released MyoPS code: cosine over a size-1 dim": lambda z: degenerate_reg_loss(back(z), host),
    "vicinal_reg_loss, spatial, corners masked": lambda z: vicinal_reg_loss(back(z), host, "spatial", kept),
    "vicinal_reg_loss, pixel, corners masked": lambda z: vicinal_reg_loss(back(z), host, "pixel", kept),
}
degenerate = pd.DataFrame(
    {
        "value": {name: float(fn(logits_rot)) for name, fn in readings.items()},
        "largest ‖∂L/∂logits‖": {
            name: float(pixel_gradient_norm(fn, logits_rot).max()) for name, fn in readings.items()
        },
    }
)
glue("kept_fraction", float(kept.mean()), display=False)
glue("degenerate_value", float(degenerate["value"].iloc[0]), display=False)
glue("degenerate_grad", float(degenerate["largest ‖∂L/∂logits‖"].iloc[0]), display=False)
glue("masked_grad", float(degenerate["largest ‖∂L/∂logits‖"].iloc[1]), display=False)
degenerate

# %% [markdown]
# The released reading gives {glue:text}`degenerate_value:.4f`, which is minus the surviving fraction
# {glue:text}`kept_fraction:.4f`. The log's $-0.83$ to $-0.99$ are this number for other angles. Its largest
# gradient is {glue:text}`degenerate_grad:.1e`, floating-point rounding, against {glue:text}`masked_grad:.1e`
# for a real cosine. In the released code, MyoPS therefore trains with no vicinal regularisation at all. The
# `released_code` preset reproduces this ({py:attr}`~modelmix_lite.methods.CoreConfig.myops_reg` `"degenerate"`,
# {py:func}`~modelmix_lite.losses.degenerate_reg_loss`); the `paper` preset computes a real cosine for every task.

# %% [markdown]
# ## 5. Where the gradient goes: $e_i$, $e_j$ and $h_i$
#
# The virtual model $\tilde f_{ij} = h_i(\tilde e)$ uses the host's decoder and head, the host's encoder except
# for one layer, and that layer's mix of $e_i$ and $e_j$. In the paper's Fig. 1, training through it updates
# every part it is built from. In the released code the mixed weights are set through `.data` on a copy, so they
# are constants (disagreement 3). `detach_virtual` switches between the two. First, the virtual model's own
# $\mathcal L_{\text{sup}}$ alone, differentiated with respect to each task's encoder, decoder and head
# ({py:func}`modelmix_lite.probes.gradient_norms_by_group`):

# %%
out = outputs["myops"]
virtual_only = {
    f"detach_virtual={detach}": supervised_loss(
        virtual_forward(models.models["myops"], models.models["mscmr"], layer, lam, out["x"], detach)[: out["n"]],
        out["y"][: out["n"]],
    )
    for detach in (False, True)
}
virtual_flow = gradient_norms_by_group(models, virtual_only)
glue("ej_paper", float(virtual_flow.loc["detach_virtual=False", ("mscmr", "encoder")]), display=False)
virtual_flow

# %% [markdown]
# With `detach_virtual=False` (`paper`), $\mathcal L_{\text{sup}}(y, \tilde f_{ij})$ reaches the MyoPS encoder,
# decoder and head and, through the one mixed layer (scaled by $1-\lambda$), the **MSCMR encoder**
# ({glue:text}`ej_paper:.1e`). This is the only path by which one task's scribbles shape another task's
# encoder. With `detach_virtual=True` (`released_code`), only the $1 \times 1$ head of the host learns from its
# virtual model, and the MSCMR encoder receives nothing.
#
# Now one whole objective step per preset, each term separately. The `released_code` preset also rotates the
# virtual model's input, draws batch-norm layers as mixing candidates, uses the unmasked pooled Dice and adds
# the mixup cross-entropy `mixce`.

# %%
flows = {}
for preset in ("paper", "released_code"):
    torch.manual_seed(seed)
    step_objective = ModelMixObjective(models, METHODS["#4"], CORE_PRESETS[preset], seed)
    loss, step_terms = step_objective({task: batches[task] for task in tasks})
    flows[preset] = gradient_norms_by_group(models, {**step_terms, "L (Eq. 9)": loss})
glue("cross_paper", float(flows["paper"].loc["vsup/myops", ("mscmr", "encoder")]), display=False)
glue("cross_released", float(flows["released_code"].loc["vsup/myops", ("mscmr", "encoder")]), display=False)
plot_gradient_flow(flows);

# %% [markdown]
# Read the rows `vsup/myops` and `vreg/myops` (the pair MyoPS-host, MSCMR-mixed). Under `paper` they send
# gradient into the MSCMR encoder ({glue:text}`cross_paper:.1e` for `vsup/myops`). Under `released_code` that
# cell is {glue:text}`cross_released:.0f`. There, every task's encoder is trained by its own terms only: the
# pair's supervised term reaches it through the host half of Eq. 7, and `vreg` reaches it through the host
# prediction, which is not detached. What the released code shares between tasks through ModelMix is a
# regulariser on each head, not a path between encoders. The `inv` terms never cross tasks in either preset:
# Eq. 1 mixes images of one task.

# %% [markdown]
# ## 6. Loss curves
#
# The run of the first section logged every term, averaged over its log interval
# ({py:func}`modelmix_lite.viz.results.plot_loss_terms` draws `Run(run).log`, the rows of `log.jsonl`). Set `steps` in the parameters cell for a
# longer run.

# %%
log = pd.DataFrame(Run(run).log)
glue("loss_first", float(log["loss"].iloc[0]), display=False)
glue("loss_last", float(log["loss"].iloc[-1]), display=False)
glue("steps_run", int(log["step"].iloc[-1]), display=False)
for task in tasks:
    glue(f"vreg_{task}_first", float(log[f"vreg/{task}"].iloc[0]), display=False)
    glue(f"vreg_{task}_last", float(log[f"vreg/{task}"].iloc[-1]), display=False)
plot_loss_terms(log);

# %% [markdown]
# Over {glue:text}`steps_run` steps the total went from {glue:text}`loss_first:.3f` to
# {glue:text}`loss_last:.3f`. `vsup` (two $\mathcal L_{\text{sup}}$ per pair) carries most of the total and
# falls as the scribbles are fitted. The cosine terms are bounded by $-1$ and start close to it: the encoders
# begin identical, so a virtual model differs from its host only by its dropout masks (and, for `inv`, by the
# mixed input). MyoPS `vreg` went from {glue:text}`vreg_myops_first:.3f` to {glue:text}`vreg_myops_last:.3f`,
# MSCMR from {glue:text}`vreg_mscmr_first:.3f` to {glue:text}`vreg_mscmr_last:.3f`. These terms have to stay
# near $-1$ while the encoders learn different tasks and drift apart. A rising `vreg` would mean that the
# virtual models leave the vicinity of their hosts, which is what Eq. 6 penalises.

# %% [markdown]
# ## Summary
#
# * Every term of Eq. 9 is one function of `modelmix_lite.losses`; `ModelMixObjective` sums them over the tasks
#   and ordered task pairs, with a random layer and $\lambda \sim \mathrm{Beta}$ per pair and step.
# * Eq. 8's supervised loss sees the annotated pixels only ({glue:text}`annotated_fraction:.1%` of the example
#   batch's pixels); the cosine terms see every pixel, scribbled or not.
# * The released code's MyoPS $\mathcal L_{\text{vicinal-reg}}$ is a constant ({glue:text}`degenerate_value:.4f`,
#   gradient {glue:text}`degenerate_grad:.1e`): it trains nothing. The `paper` preset uses a real cosine.
# * In a short run the total fell from {glue:text}`loss_first:.3f` to {glue:text}`loss_last:.3f` while the
#   cosine terms stayed near $-1$: the virtual models remain in the vicinity of their hosts.
#
# Next: training ModelMix against separate models ({doc}`05_training`).
