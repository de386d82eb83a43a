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
# # Parameter interpolation: the virtual model (Eq. 5)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/modelmix-lite/modelmix_lite/blob/main/notebooks/03_parameter_interpolation.ipynb)
#
# ModelMix does not mix images of different tasks; it mixes the **models**. Task $t_i$ has its own model
# $f_i = h_i(e_i(x))$. A *virtual* model $\tilde f_{ij} = h_i(\tilde e)$ keeps $f_i$ unchanged except for one
# encoder layer, whose parameters are interpolated with those of the same layer of $e_j$ (paper §2.2). The
# regularisers of the next notebooks then ask $\tilde f_{ij}$ to segment task $i$ as well as $f_i$ does.
# Why should a half-way layer mean anything? Because interpolating a convolution's parameters interpolates
# its output: that is Eq. 5. This notebook checks that claim and follows it through the network:
#
# 1. Eq. 5 derived, and the bias term as the paper prints it, which breaks the identity;
# 2. which layers can be mixed (the paper: convolutions; the released code: convolutions and BN affines);
# 3. the identity checked at every mixable convolution, in float64;
# 4. how far it drifts after BatchNorm (train vs eval mode), ReLU and the rest of the network;
# 5. the feature maps of $e_i$, $e_j$ and $\tilde e$ side by side;
# 6. how $\lambda$ is sampled, and its endpoints;
# 7. a sweep over $\lambda$ (and a slider, when you run the notebook yourself);
# 8. the virtual model as a dictionary of tensors, and which parameters it trains in the paper and in the
#    released code.
#
# Everything is computed by `modelmix_lite.mixing` (the method) and `modelmix_lite.viz` (the figures).
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
task_i, task_j = "myops", "mscmr"  # the host task i and the partner task j of the virtual model
lam = 0.5  # the mixing ratio of the worked examples
width = None  # channels of the first UNet block; None: the profile's `base` (the UNet the book trains)
slice_size = None  # network input side S; None: the profile's `size`
n_lams = 7  # points of the λ grid of the drift study
batch_size = 2  # slices in the batch the models are probed with
n_draws = 4000  # λ draws per Beta(α, α) in the sampling section

# %%
from modelmix_lite.tutorial import state_runtime

state_runtime('03_parameter_interpolation')

# %%
import dataclasses

import numpy as np
import pandas as pd
import torch
from scipy.stats import beta as beta_distribution
from torch.func import functional_call

from modelmix_lite.config import FOV_MM, PROFILES
from modelmix_lite.losses import supervised_loss
from modelmix_lite.mixing import (
    DRIFT_POINTS,
    interpolate,
    layer_linearity,
    linearity_drift,
    mixable_layers,
    printed_bias_mix,
    sample_lambda,
    virtual_forward,
    virtual_parameters,
)
from modelmix_lite.models import TaskModelSet
from modelmix_lite.probes import gradient_norms_by_group, mixed_feature_maps
from modelmix_lite.sampling import example_batch
from modelmix_lite.tutorial import display_path, glue, resolve_data_root, resolve_profile
from modelmix_lite.viz import (
    lambda_slider,
    plot_beta_densities,
    plot_drift_curves,
    plot_drift_heatmap,
    plot_feature_mix,
    plot_gradient_flow,
    plot_lambda_sweep,
)


profile = resolve_profile(profile)
width, slice_size = width or PROFILES[profile].base, slice_size or PROFILES[profile].size
device = torch.device("cuda" if profile in ("gpu", "paper") and torch.cuda.is_available() else "cpu")
if profile == "smoke":
    torch.set_num_threads(1)  # tiny tensors: on a busy machine, extra threads cost more than they save
root = resolve_data_root(data_root, profile, seed)
generator = torch.Generator().manual_seed(seed)  # every random draw of the library comes from here
print(f"profile: {profile}, data root: {display_path(root)}, UNet width {width}, slices {slice_size}², device {device}")

# %% [markdown]
# ## Two task models and a batch
#
# The host task is {glue:text}`task_i` and the partner {glue:text}`task_j`. `modelmix_lite.models.TaskModelSet`
# builds one UNet per task; the encoders share one architecture (every model takes 3 input channels, see
# `modelmix_lite.models.as_model_input`), the heads differ (5 MyoPS classes, 4 MSCMR ones).
#
# Two details make the demonstration honest. Fresh layers have bias $b = 0$ and BatchNorm $\gamma = 1$,
# $\beta = 0$: with those values every bias term of Eq. 5 vanishes and no bias error could show, so we give
# every bias and BN affine a random value, as training would. And both presets start the task models from one
# initialisation (the released code's `deepcopy`), after which training moves them apart; we use independent
# initialisations (`identical_init=False`), which makes the two models as different as they can be: the
# hardest case for the premise of Eq. 5, and the most visible one in the figures.

# %%
glue("task_i", task_i, display=False)
glue("task_j", task_j, display=False)
model_set = TaskModelSet([task_i, task_j], base=width, identical_init=False, generator=generator)
with torch.no_grad():  # trained-looking biases and BN affines: b, β ~ N(0, 0.1²), γ ~ 1 + N(0, 0.1²)
    for p in model_set.parameters():
        if p.ndim == 1:
            p.add_(torch.randn(p.shape, generator=generator), alpha=0.1)
model_set = model_set.to(device).eval()  # eval: no dropout noise in the comparisons
model_i, model_j = model_set.models[task_i], model_set.models[task_j]

batch = example_batch(task_i, root, slice_size, n_scribbled=batch_size, n_unlabeled=0, seed=seed,
                      spacing_mm=FOV_MM / slice_size)  # task i's most-scribbled training slices
x = batch["image"].to(device)  # (B, 3, S, S)
y = batch["target"].to(device)  # (B, S, S) scribbles, 255 = unannotated
n_params = sum(p.numel() for p in model_i.parameters())
print(f"x: {tuple(x.shape)}, y: {tuple(y.shape)}; {n_params:,} parameters per model")

# %% [markdown]
# ## 1. Eq. 5: why interpolating parameters interpolates features
#
# Write a convolution with kernel $k$ and bias $b$ as $g(x; k, b) = x * k + b$ (the bias added to every pixel
# of its output channel). For a **fixed input** $x$, $g$ is linear in the pair $(k, b)$: for any numbers
# $\alpha, \beta$,
#
# $$
# g(x;\ \alpha k + \beta k',\ \alpha b + \beta b') = x * (\alpha k + \beta k') + \alpha b + \beta b'
# = \alpha\,(x * k + b) + \beta\,(x * k' + b') ,
# $$
#
# because convolution distributes over sums of kernels. With $\alpha = \lambda$, $\beta = 1 - \lambda$ and the
# parameters of layer $g_i$ of $e_i$ and $g_j$ of $e_j$:
#
# $$
# \tilde g_{ij}(x) = g\big(x;\ \lambda k_i + (1-\lambda) k_j,\ \lambda b_i + (1-\lambda) b_j\big)
# = \lambda\, g_i(x) + (1-\lambda)\, g_j(x) .
# $$
#
# This is the first line of Eq. 5, and it is **exact** for every input: kernel and bias must be interpolated
# the same way. `modelmix_lite.mixing.interpolate` computes $\lambda p_i + (1-\lambda) p_j$ for both.
#
# The paper's second line prints the bias as $\lambda\,[b_i + (1-\lambda) b_j] = \lambda b_i + \lambda(1-\lambda) b_j$
# (`modelmix_lite.mixing.printed_bias_mix`). Subtracting the bias the identity needs,
#
# $$
# \lambda b_i + \lambda(1-\lambda) b_j - \big[\lambda b_i + (1-\lambda) b_j\big] = -(1-\lambda)^2\, b_j ,
# $$
#
# which vanishes only for $\lambda = 1$ or $b_j = 0$. So the printed form cannot satisfy the identity it is
# written under: at $\lambda = 0$ its bias is $0$ instead of $b_j$, and mixing a layer **with itself**
# ($b_i = b_j = b$) gives $\lambda(2-\lambda)\, b \neq b$. The released code mixes the bias exactly like the
# kernel (reference notes, disagreement 1), so we read the printed form as a typo and the library uses the
# linear one. First the smallest counter-example, a layer mixed with itself:

# %%
b = torch.tensor(1.0)
self_mix = printed_bias_mix(b, b, 0.5).item()
glue("self_mix", self_mix, display=False)
print(f"b = 1 mixed with itself at λ = 0.5: printed form {self_mix}, linear form {interpolate(b, b, 0.5).item()}")

# %% [markdown]
# A layer mixed with itself must stay itself; the printed form turns a bias of 1 into {glue:text}`self_mix`.
# Now the real first convolution of the two encoders, on our batch, in float64. We run the convolution
# module with borrowed tensors (`torch.func.functional_call`), so the same code evaluates $g$ at any
# $(k, b)$:

# %%
layer = mixable_layers(model_i)[0]  # encoder.block1.conv1: both encoders see the image itself there
conv = model_i.get_submodule(layer.name)
(k_i, b_i), (k_j, b_j) = ([m.get_parameter(name).double() for name in layer.params] for m in (model_i, model_j))
x64 = x.double()


def g(k: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The convolution of ``layer`` with kernel ``k`` and bias ``b``, on the batch: (B, C_out, S, S)."""
    return functional_call(conv, {"weight": k, "bias": b}, (x64,))


target = lam * g(k_i, b_i) + (1 - lam) * g(k_j, b_j)  # λ g_i(x) + (1 − λ) g_j(x)
linear_error = g(interpolate(k_i, k_j, lam), interpolate(b_i, b_j, lam)) - target
printed_error = g(interpolate(k_i, k_j, lam), printed_bias_mix(b_i, b_j, lam)) - target
predicted = -((1 - lam) ** 2) * b_j[None, :, None, None]  # −(1 − λ)² b_j on every pixel of channel c
assert torch.allclose(printed_error, predicted.expand_as(printed_error), rtol=0, atol=1e-12)
bias_check = pd.Series(
    {
        "max |error|, linear bias (Eq. 5, first line)": linear_error.abs().max().item(),
        "max |error|, printed bias (Eq. 5, second line)": printed_error.abs().max().item(),
        "max (1 − λ)² |b_j|": predicted.abs().max().item(),
    },
    name=f"{layer.name}, λ = {lam}",
)
glue("linear_error", float(bias_check.iloc[0]), display=False)
glue("printed_error", float(bias_check.iloc[1]), display=False)
bias_check.to_frame()

# %% [markdown]
# With the linear bias the mixed convolution reproduces $\lambda g_i + (1-\lambda) g_j$ to
# {glue:text}`linear_error:.1e` (float64 round-off); with the printed bias it misses by
# {glue:text}`printed_error:.3f`, which is exactly $(1-\lambda)^2 |b_j|$ of the worst channel (the assertion
# above checks every pixel against $-(1-\lambda)^2 b_j$).
#
# ## 2. Which layers are mixed
#
# "For each encoder, we randomly select a convolutional layer from the encoder" (§2.2): the UNet encoder has
# five blocks of two $3 \times 3$ convolutions, so {glue:text}`n_conv` candidates. The released code draws from
# a list of {glue:text}`n_all` layers instead: each convolution **and** the affine part of the BatchNorm after
# it (reference notes, disagreement 2), so half of its "mixed convolutions" are BN layers. Both are exact at
# the mixed layer for the same reason: BN's affine step $\gamma \hat x + \beta$ is linear in $(\gamma, \beta)$
# for a fixed normalised input $\hat x$, which does not depend on $\gamma, \beta$. `CoreConfig.mix_bn` of
# `modelmix_lite.methods` chooses the list; `modelmix_lite.mixing.mixable_layers` builds it.

# %%
candidates = mixable_layers(model_i, include_bn=True)
glue("n_conv", sum(c.kind == "conv" for c in candidates), display=False)
glue("n_all", len(candidates), display=False)
pd.DataFrame(
    {
        **dataclasses.asdict(c),
        "weight shape": tuple(model_i.get_parameter(c.params[0]).shape),
        "parameters": sum(model_i.get_parameter(p).numel() for p in c.params),
        "paper": c.kind == "conv",
        "released code": True,
    }
    for c in candidates
).drop(columns="params").set_index("name")

# %% [markdown]
# ## 3. The identity at every mixable convolution
#
# `modelmix_lite.mixing.layer_linearity` repeats the check of section 1 at every mixable convolution: it
# records the feature map $f$ that reaches the convolution in $e_i$, and compares the mixed convolution
# $\tilde g(f)$ with $\lambda g_i(f) + (1-\lambda) g_j(f)$ over a grid of $\lambda$. In float64 the error is
# round-off; in float32 (the precision of training) it is float32 round-off, still nothing to do with the
# method.

# %%
lams = np.linspace(0.0, 1.0, n_lams).round(4).tolist()
exactness = pd.concat(
    {
        str(dtype).removeprefix("torch."): layer_linearity(model_i, model_j, x, lams, dtype=dtype)
        .groupby("layer", sort=False)[["abs_err", "rel_err"]]
        .max()
        for dtype in (torch.float64, torch.float32)
    },
    axis=1,
)
max_error64 = exactness[("float64", "abs_err")].max()
assert max_error64 < 1e-10, max_error64
glue("max_error64", float(max_error64), display=False)
glue("max_rel32", float(exactness[("float32", "rel_err")].max()), display=False)
exactness.style.format("{:.1e}")

# %% [markdown]
# In float64 the largest absolute error over all convolutions and all $\lambda$ is {glue:text}`max_error64:.1e`
# (the notebook asserts it is below $10^{-10}$); in float32 the relative error stays below
# {glue:text}`max_rel32:.1e`. At the mixed layer, Eq. 5 holds.
#
# ## 4. After the mixed layer: BatchNorm, ReLU and the rest of the network
#
# Eq. 5 is a statement about one layer. The paper's premise, "linear interpolation of the convolution
# parameters results in linear interpolation of the relevant features", needs more: that the **network's**
# features interpolate too. `modelmix_lite.mixing.linearity_drift` measures how far they do. For each mixed
# convolution it compares the virtual model $\tilde f$ at $\lambda$ with $\lambda f_i + (1-\lambda) f_j$, where
# $f_i$ is model $i$ ($\lambda = 1$) and $f_j$ is model $i$ with only that layer taken from $j$ ($\lambda = 0$),
# at six points in forward order: the convolution's output, after its BatchNorm, after the ReLU, at the end of
# its block, at the encoder's output and at the logits. What to expect:
#
# * **BN in eval mode** normalises with fixed running statistics: it is affine, so the identity survives it.
# * **BN in train mode** normalises with the batch's mean and variance, which depend on $\lambda$: not linear.
# * **ReLU** is linear only where the pre-activations of $f_i$ and $f_j$ have the same sign; where they
#   disagree the mix bends.
# * Every later layer is nonlinear in its input too: nothing downstream restores the identity.
#
# The curves show the median over the mixed convolutions (band: their range); the heat map shows each
# mixed convolution (rows, from shallow to deep) at its worst $\lambda$.

# %%
drift = linearity_drift(model_i, model_j, x, lams)
fig = plot_drift_curves(drift)

# %%
fig = plot_drift_heatmap(drift)

# %%
worst = drift.groupby(["mode", "point"])["rel_err"].max().unstack("point")[list(DRIFT_POINTS)]
mid_lam = min(lams, key=lambda v: abs(v - 0.5))
mid = drift[(drift["lam"] == mid_lam) & (drift["point"] == "logits")].groupby("mode")["rel_err"].median()
glue("bn_eval", float(worst.loc["eval", "bn"]), display=False)
glue("bn_train", float(worst.loc["train", "bn"]), display=False)
glue("logits_eval", float(mid["eval"]), display=False)
glue("logits_train", float(mid["train"]), display=False)
glue("mid_lam", mid_lam, display=False)
worst.style.format("{:.1e}")

# %% [markdown]
# Three regimes appear. Up to the BatchNorm in eval mode the identity is exact (worst case
# {glue:text}`bn_eval:.1e`); in train mode the batch statistics break it at once (up to {glue:text}`bn_train:.2f`
# relative). From the ReLU on, the virtual model is **not** the interpolation of the two models: at
# $\lambda =$ {glue:text}`mid_lam` the relative drift of the logits is {glue:text}`logits_eval:.2f` (eval) and
# {glue:text}`logits_train:.2f` (train), in the median over mixed layers. The drift vanishes at
# both ends by construction and is largest in between. Task models trained from one initialisation (as in both
# presets) are closer to each other than our two independent ones, and the drift shrinks as the two mixed
# layers get closer (it is zero when they coincide), but the lesson holds: Eq. 5 makes the mixed
# layer meaningful; it does not make $\tilde f_{ij}$ a blend of $f_i$ and $f_j$. Accordingly, ModelMix never
# asks $\tilde f_{ij}$ to *equal* an interpolation of predictions; it asks it to segment task $i$ well
# ($\mathcal L_{\text{vicinal-sup}}$, Eq. 7) and agree with $f_i$ ($\mathcal L_{\text{vicinal-reg}}$, Eq. 6).
#
# ## 5. Feature maps of $e_i$, $e_j$ and $\tilde e$
#
# The same story in pictures, for the first slice of the batch and the first convolution (where $e_i$ and
# $e_j$ see the same input, the image). `modelmix_lite.probes.mixed_feature_maps` records the three encoders at the
# mixed convolution and at the end of its block; the last column is $\tilde e - [\lambda e_i + (1-\lambda) e_j]$ on
# the same colour scale. Note that channel $c$ of $e_i$ and channel $c$ of $e_j$ are unrelated filters here
# (independent initialisations): the mix blends two different responses.

# %%
maps = mixed_feature_maps(model_i, model_j, layer, lam, x)
for point, m in maps.items():  # largest |ẽ − [λ e_i + (1 − λ) e_j]| over all channels
    glue(f"resid_{point}", (m["e_mix"] - (lam * m["e_i"] + (1 - lam) * m["e_j"])).abs().max().item(), display=False)
fig = plot_feature_mix(maps, lam, layer, channels=(0, 1))

# %% [markdown]
# At the convolution $\tilde e$ is the blend (residual {glue:text}`resid_layer:.0e`, float32 round-off). At the end
# of block 1 it is not (residual {glue:text}`resid_block:.2f`): the BatchNorm, ReLU and second convolution that
# follow are $e_i$'s, applied to the blend. The virtual encoder is $e_i$ with one layer moved towards $e_j$, not a
# point half-way between two encoders.
#
# ## 6. Sampling $\lambda$
#
# "$\lambda$ is the mixed ratio sampled from beta distribution" (§2.2), without a value; the released code uses
# $\mathrm{Beta}(0.5, 0.5)$, a new $\lambda$ for each virtual model and iteration
# (`modelmix_lite.mixing.sample_lambda`, which draws on the device without a host sync). The concentration
# $\alpha$ (called $a$ in the legend) sets the shape: $\alpha < 1$ favours near-copies of one of the two layers,
# $\alpha = 1$ is uniform, $\alpha > 1$ favours true blends. The mean is $\tfrac12$ in every case.

# %%
alphas = (0.5, 1.0, 2.0)
draws = {a: torch.stack([sample_lambda(a, "cpu", generator) for _ in range(n_draws)]) for a in alphas}
glue("edge_exact", float(2 * beta_distribution.cdf(0.1, 0.5, 0.5)), display=False)
glue("edge_drawn", ((draws[0.5] < 0.1) | (draws[0.5] > 0.9)).float().mean().item(), display=False)
fig = plot_beta_densities(concentrations=alphas, samples=draws)
fig.axes[0].set_xlabel("mixing ratio λ");  # the figure is notebook 02's, where the ratio is called α

# %% [markdown]
# With the released code's $\alpha = 0.5$, a fraction {glue:text}`edge_exact:.0%` of the virtual layers lie within
# 0.1 of one endpoint (drawn: {glue:text}`edge_drawn:.0%`). The endpoints themselves are exact, bit for bit:
# $\lambda = 1$ gives model $i$, and $\lambda = 0$ gives model $i$ with the chosen layer **copied** from $e_j$
# (not model $j$: every other layer is still $i$'s).

# %%
params_j = dict(model_j.named_parameters())
endpoints = pd.Series(
    {
        "λ = 1: f̃ equals f_i bit for bit": torch.equal(virtual_forward(model_i, model_j, layer, 1.0, x), model_i(x)),
        "λ = 0: the mixed tensors are e_j's bit for bit": all(
            torch.equal(virtual_parameters(model_i, model_j, layer, 0.0)[name], params_j[name]) for name in layer.params
        ),
    }
)
assert endpoints.all()
endpoints.to_frame("holds")

# %% [markdown]
# ## 7. A sweep over $\lambda$
#
# One channel of the virtual encoder as $\lambda$ goes from 0 to 1: at the mixed convolution (top) the map
# moves linearly between the two filters' responses; at the end of the block (bottom) it does not.

# %%
sweep = {lam: mixed_feature_maps(model_i, model_j, layer, lam, x) for lam in (0.0, 0.25, 0.5, 0.75, 1.0)}
fig = plot_lambda_sweep(sweep, layer, channel=0)

# %% [markdown]
# Running the notebook yourself, drag $\lambda$ (this cell is not executed when the book is built):

# %% tags=["skip-execution"]
lambda_slider(lambda lam: mixed_feature_maps(model_i, model_j, layer, lam, x), layer, channels=(0, 1))

# %% [markdown]
# ## 8. The virtual model is a dictionary, not a copy
#
# The released code builds $\tilde f_{ij}$ by `deepcopy`-ing the host network and overwriting the chosen
# layer's `.data`. `modelmix_lite.mixing.virtual_parameters` instead returns a dictionary of model $i$'s own
# tensors, in which only the two tensors of the mixed layer are new (`interpolate` of $i$'s and $j$'s);
# `modelmix_lite.mixing.virtual_forward` runs model $i$'s modules on it with `torch.func.functional_call`.
# No module is copied, and BN running statistics are never written by a virtual pass.

# %%
tensors = virtual_parameters(model_i, model_j, layer, lam)
own = {**dict(model_i.named_parameters()), **dict(model_i.named_buffers())}
shared = [name for name, t in tensors.items() if t is own[name]]
glue("n_shared", len(shared), display=False)
glue("n_new", len(tensors) - len(shared), display=False)
print(f"{len(shared)} of {len(tensors)} tensors are model i's own objects; new: {sorted(set(tensors) - set(shared))}")

# %% [markdown]
# {glue:text}`n_shared` tensors are shared with model $i$ and {glue:text}`n_new` are new. Because the new ones are
# computed from $i$'s and $j$'s parameters inside the autograd graph, a loss on $\tilde f_{ij}$ can train
# **both** encoders, which is what the paper's Fig. 1 implies. The released code assigns `.data`, which cuts the
# graph: the mixed weights are constants, the copied encoder and decoder are frozen, and only the 1×1 head of
# task $i$ learns from the virtual model (reference notes, disagreement 3). `virtual_parameters(..., detach=True)`
# reproduces that (`CoreConfig.detach_virtual` in the `released_code` preset). Below, the virtual term of
# Eq. 7, $\mathcal L_{\text{sup}}(y, \tilde f_{ij}(x))$, is differentiated in both modes, and
# `modelmix_lite.probes.gradient_norms_by_group` reports $\lVert \partial \mathcal L / \partial \theta \rVert$ for the
# encoder, decoder and head of each model (grey: no gradient at all).

# %%
losses = {
    "paper (detach=False)": supervised_loss(virtual_forward(model_i, model_j, layer, lam, x), y),
    "released_code (detach=True)": supervised_loss(virtual_forward(model_i, model_j, layer, lam, x, detach=True), y),
}
reach = gradient_norms_by_group(model_set, losses)
encoder_j = [name for name, _ in model_j.named_parameters() if name.startswith("encoder.")]
grads = torch.autograd.grad(losses["paper (detach=False)"], [params_j[n] for n in encoder_j], allow_unused=True)
reached_j = [name for name, grad in zip(encoder_j, grads) if grad is not None]
assert reached_j == list(layer.params)
glue("reached_j", ", ".join(reached_j), display=False)
fig = plot_gradient_flow({"$\\mathcal{L}_{sup}(y, \\tilde f_{ij}(x))$": reach})

# %% [markdown]
# In the paper's reading the loss on $\tilde f_{ij}$ trains all of model $i$ and, in model $j$, exactly the mixed
# layer ({glue:text}`reached_j`). In the released code it trains the head of model $i$ only.

# %% [markdown]
# ## Summary
#
# * Eq. 5 is exact where it is applied: a convolution with interpolated parameters returns the interpolation of
#   the two convolutions' outputs, to {glue:text}`max_error64:.1e` in float64 (round-off, not the method).
# * After the mixed layer the virtual encoder is no longer a blend of $e_i$ and $e_j$: BatchNorm, ReLU and the
#   rest of the network bend the line, which is why the paper treats $\tilde f_{ij}$ as a model of its own.
# * The paper mixes one of {glue:text}`n_conv` convolutions per encoder; the released code draws from
#   {glue:text}`n_all` layers, BatchNorm affines included (`CoreConfig.mix_bn`).
# * The virtual model is a dictionary of tensors over model $i$ (`torch.func.functional_call`): in the paper's
#   reading its loss reaches all of model $i$ and, in model $j$, only the mixed layer ({glue:text}`reached_j`).
#
# Next: the losses that train these virtual models ({doc}`04_vicinal_losses`).
