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
# # Training: ModelMix against separate models
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/modelmix-lite/modelmix_lite/blob/main/notebooks/05_training.ipynb)
#
# The previous notebooks took ModelMix apart: perturbations and $\mathcal L_{\text{inv}}$ (Eq. 1), parameter
# interpolation (Eq. 5), the vicinal losses (Eqs. 6–8). Here we train the whole thing and ask the question of the
# paper's Table 1: **does mixing the encoders of two tasks help each of them?** The runs see the same data, the
# same batches, the same initial weights and the same seed; only the objective differs:
#
# * **#2, separate models**: one UNet per task, each trained with $\mathcal L_{\text{pce}} + \mathcal L_{\text{inv}}$
#   (Eq. 1). The models share nothing; training them side by side is training them apart.
# * **#4, ModelMix**: the same models, trained with Eq. 9,
#   $\mathcal L_{\text{inv}} + \mathcal L_{\text{vicinal-sup}} + \mathcal L_{\text{vicinal-reg}}$: every step also
#   builds virtual models $\tilde f_{ij}$ whose encoders mix a layer of $e_i$ and $e_j$, and trains them too.
# Both use the `paper` core preset. ModelMix as the authors' released code computes it (the `released_code`
# preset) is compared with it on the real ACDC and MSCMRseg patients, from recorded runs with three seeds
# ({doc}`06_paper_comparisons`, {doc}`../book/reproducibility`): on the phantom, with one seed, that gap would be
# noise, and a third run would double this notebook's time.
#
# This notebook:
#
# 1. trains the two runs on MyoPS and MSCMRseg (or loads them if they are already there);
# 2. plots their training curves;
# 3. evaluates them on the test sets, in the layout of the paper's tables;
# 4. shows the worst, median and best test cases, as the paper's Figs. 2–3;
# 5. records what produced the numbers (provenance).
#
# The library does the work: {py:func}`modelmix_lite.train.train` trains,
# {py:func}`modelmix_lite.evaluate.evaluate_run` evaluates, figures come from `modelmix_lite.viz`.
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
profile = os.environ.get("MODELMIX_PROFILE", "auto")  # auto (gpu with CUDA, else cpu) | smoke | cpu | cpu_long | gpu | paper
data_root = None  # None: the synthetic phantom; or a folder with MyoPS/, MSCMR_dataset/ (, ACDC_dataset/)
seed = 0
tasks = "myops,mscmr"  # the tasks trained together (Table 1: MyoPS with MSCMRseg)
eval_split = "test"  # the real MyoPS test labels are withheld by the organisers: use "val" there
retrain = False  # True: train again even when a finished run of the same config and data exists

# %%
from modelmix_lite.tutorial import state_runtime

state_runtime('05_training')

# %%
import json

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown

from modelmix_lite import tutorial, viz
from modelmix_lite.config import pick_device, resolve_config
from modelmix_lite.data.readers import load_split
from modelmix_lite.evaluate import evaluate_run, paper_table, qualitative_cases
from modelmix_lite.methods import CORE_PRESETS, METHODS
from modelmix_lite.metrics import summarize
from modelmix_lite.rundir import Run, run_name

on_phantom = data_root is None
profile = tutorial.resolve_profile(profile)
variants = {  # glue key -> (label in tables and figures, method, core preset)
    "2": ("separate (#2)", "#2", "paper"),
    "4": ("ModelMix (#4)", "#4", "paper"),
}
configs = {key: resolve_config(profile, {"seed": seed}, preset) for key, (_, _, preset) in variants.items()}
config = configs["4"]  # the training budget (steps, batch, size, UNet), the same for every run
root = tutorial.resolve_data_root(data_root, profile, seed)
tasks = [task.strip().lower() for task in tasks.split(",")]
device = pick_device(config.device)
if profile == "smoke":
    torch.set_num_threads(1)  # tiny tensors: more threads only add synchronisation, worst on a busy machine
runs_root = tutorial.runs_dir("05_training", profile)
length = f"{config.epochs} epochs" if config.epochs else f"{config.steps} steps"
print(f"profile: {profile} ({length}, batch {config.batch_size} per task, {config.size}×{config.size}, "
      f"UNet base {config.base}), device: {device}\ndata root: {tutorial.display_path(root)}\nruns: {tutorial.display_path(runs_root)}")

# %% [markdown]
# ## The methods and the presets
#
# Both methods are rows of `modelmix_lite.methods.METHODS`; the columns say which loss terms are on. #4 puts a
# Dice term next to the cross-entropy of the scribbles (Eq. 8), and its own $\mathcal L_{\text{sup}}$ is the
# $f_i$ half of $\mathcal L_{\text{vicinal-sup}}$ (Eq. 7).

# %%
pd.DataFrame([vars(METHODS[name]) for name in ("#2", "#4")]).set_index("name").drop(columns=["min_tasks"])

# %% [markdown]
# A core preset ({py:data}`modelmix_lite.methods.CORE_PRESETS`) fixes *how* each term is computed where the
# paper and the authors' code disagree. Both runs here use `paper`; these are the fields on which it differs from
# `released_code` ({doc}`../book/reproducibility` explains each one):

# %%
paper_core, released_core = vars(CORE_PRESETS["paper"]), vars(CORE_PRESETS["released_code"])
pd.DataFrame({"paper": paper_core, "released_code": released_core}).loc[
    [field for field in paper_core if paper_core[field] != released_core[field]]
].astype(str)

# %% [markdown]
# ## Train, or load a finished run
#
# A run directory holds everything {py:func}`~modelmix_lite.train.train` wrote: `config.json` (the resolved
# configuration), `split.json` (which five subjects per task are scribbled), `log.jsonl` (losses and validation
# Dice), `last.pt` (the latest state, for resuming), `best.pt` (the weights with the best mean validation Dice)
# and `training_curves.png`, written after the last step. Training takes a while beyond the smoke profile, so
# {py:func}`~modelmix_lite.tutorial.train_or_load` reuses a finished run when
# {py:func}`~modelmix_lite.evaluate.finished_run` finds its `config.json` equal to the one we would train with,
# its `training_curves.png` present, and the same data: {py:func}`~modelmix_lite.evaluate.data_fingerprint`
# hashes every file the splits read, and the fingerprint is kept in the run's `provenance.json` with the wall
# time and the environment. Anything else, or `retrain = True`, trains from scratch (the progress bars show the
# summed loss terms). The check does not cover the library's code: after changing it, retrain. Notebook 04
# trained the ModelMix run of the `paper` preset already, so it is loaded here.

# %%
runs, trained = {}, {}
for key, (label, method, preset) in variants.items():
    run = runs_root / f"{run_name(method)}_{preset}"
    trained[label] = tutorial.train_or_load(configs[key], root, run, method, tasks, retrain)
    runs[label] = run
    wall = Run(run).provenance["wall_s"]
    print(f"{label}: {'trained' if trained[label] else 'loaded'} {tutorial.display_path(run)} ({wall} s of training)")

# %% [markdown]
# ## Training curves
#
# Each run logs the mean of every loss term over each log interval, per task (`inv/myops` is
# $\mathcal L_{\text{inv}}$ of the MyoPS model; `vsup/myops` sums Eq. 7 over the pairs hosted by MyoPS).
# {py:func}`modelmix_lite.viz.results.plot_loss_terms` draws them. The totals of the runs are sums of different terms
# (#4 adds the vicinal terms `vsup` and `vreg`), so compare each curve with itself: it should go down (the cosine
# terms towards $-1$).

# %%
for label, run in runs.items():
    fig = viz.plot_loss_terms(Run(run).log)
    fig.suptitle(label, x=0.01, ha="left", fontsize=10)
    fig.tight_layout()
    plt.show()

# %% [markdown]
# The validation Dice *is* comparable: the 3-D Dice of every structure of every validation volume, averaged per
# task, computed during training. `best.pt` keeps the weights with the best mean over the tasks; those weights
# are the ones tested below (the authors' code, too, tests the best validation checkpoint on MSCMRseg).

# %%
viz.plot_validation_curves({label: Run(run).log for label, run in runs.items()})
plt.show()

# %% [markdown]
# ## Results in the layout of Table 1
#
# {py:func}`~modelmix_lite.evaluate.evaluate_run` segments every volume of the evaluation split slice by slice
# with the best weights, maps the probabilities back to the volume's own grid, and scores each evaluated
# structure in 3-D ({py:func}`modelmix_lite.metrics.evaluate_volume`): Scar and Edema (edema ∪ scar) for MyoPS;
# LV, MYO and RV for MSCMRseg. {py:func}`~modelmix_lite.evaluate.paper_table` reports mean ± standard deviation
# over volumes; "Avg" pools every (volume, structure) pair, as the released evaluation does.

# %%
rows = pd.concat([evaluate_run(run, root, eval_split, device=device, progress=False).assign(method=label)
                  for label, run in runs.items()], ignore_index=True)
budget = f"{length}, batch {config.batch_size} per task, {config.size}×{config.size}, UNet base {config.base}"
setting = f"the `{profile}` profile ({budget})"
if profile == "smoke":
    caveat = f"**These numbers mean nothing.** They come from {setting}, run only to check that every cell works. " \
             "Run the notebook with the `cpu` profile, or on a GPU, for numbers that say something."
elif on_phantom:
    caveat = f"These numbers come from {setting} on the **synthetic phantom**, not the paper's data: they show what " \
             "the methods do on a toy problem, not whether Table 1 reproduces."
else:
    caveat = f"These numbers come from {setting} on the data in `{tutorial.display_path(root)}`. The paper trains for 1000 epochs with a " \
             "base-64 UNet (the `paper` profile)."
tutorial.glue("caveat", Markdown(caveat))
tutorial.glue("run_setting", f"the {profile} profile ({budget}) on {'the synthetic phantom' if on_phantom else root}")
print(f"{eval_split} split, Dice:")
paper_table(rows, "dice")

# %% [markdown]
# {glue:md}`caveat`
#
# The same volumes in Hausdorff distance (mm; lower is better). The released code never computes it; ours is
# medpy's definition ({py:func}`modelmix_lite.metrics.hausdorff`). A structure missing from a prediction has no
# distance and is left out of its mean.

# %%
paper_table(rows, "hd")

# %%
summary = summarize(rows)
average = summary[summary["structure"] == "Avg"].set_index(["task", "method"])["dice_mean"]
labels = {key: label for key, (label, _, _) in variants.items()}
for task in tasks:
    tutorial.glue(f"n_eval_{task}", rows.loc[rows["task"] == task, "case"].nunique())
    for key in variants:
        tutorial.glue(f"dice_{task}_{key}", average[task, labels[key]])
    tutorial.glue(f"gain_{task}", average[task, labels["4"]] - average[task, labels["2"]])

# %% [markdown]
# On MyoPS, ModelMix reaches an average Dice of {glue:text}`dice_myops_4:.3f` against
# {glue:text}`dice_myops_2:.3f` for separate models (a difference of {glue:text}`gain_myops:+.3f`); on MSCMRseg
# {glue:text}`dice_mscmr_4:.3f` against {glue:text}`dice_mscmr_2:.3f` ({glue:text}`gain_mscmr:+.3f`). In the
# paper (Table 1: MyoPS & MSCMRseg, real data, 1000 epochs, scored on the validation sets) the same two rows read
# .440 → .574 on MyoPS and .539 → .805 on MSCMRseg. Each of our means comes from {glue:text}`n_eval_myops` MyoPS
# and {glue:text}`n_eval_mscmr` MSCMRseg volumes; the per-volume view below shows how far the scores spread, which
# is what a difference of two means has to be judged against.

# %%
viz.plot_dice_strip(rows)
plt.show()

# %% [markdown]
# ## Worst, median and best cases
#
# The paper's Figs. 2–3 show the test cases ranked worst, median and best "by the average Dice Scores of all
# compared methods". {py:func}`~modelmix_lite.evaluate.select_cases` ranks them the same way, per task; each row
# is the middle slice of the heart, zoomed in, with the LGE image (MyoPS: `DE`) under the ground truth and under
# each method's prediction ({py:func}`~modelmix_lite.evaluate.qualitative_cases` calls
# {py:func}`~modelmix_lite.evaluate.predict_volume`), and each method's average Dice
# of that volume. When a split has fewer than three volumes, one volume takes several ranks.

# %%
models = {label: Run(run).models("best.pt", device) for label, run in runs.items()}
for task in tasks:
    viz.plot_qualitative(*qualitative_cases({label: m.models[task] for label, m in models.items()},
                                            rows[rows["task"] == task], load_split(task, root, eval_split),
                                            config.size, config.spacing_mm, device))
    plt.show()

# %% [markdown]
# ## Provenance
#
# A number without its origin cannot be checked. Next to the runs, `provenance.json` records the profile, the
# seed, the data (root and fingerprint), the software and device (`tutorial.describe_environment`: versions and
# the git commit, `+dirty` with local changes), and for each run its configuration (`config.json`), wall time,
# the step of its best checkpoint and whether this session trained or loaded it.

# %%
provenance = tutorial.write_provenance(
    runs_root, runs, trained, profile=profile, seed=seed, tasks=tasks, eval_split=eval_split, data_root=root,
    data_fingerprint=Run(runs[labels["4"]]).provenance["data_fingerprint"],
)
print(json.dumps({**provenance, "runs": {label: {k: v for k, v in run.items() if k != "config"}
                                         for label, run in provenance["runs"].items()}}, indent=2))
print(f"full record, with each run's configuration: {tutorial.display_path(runs_root / 'provenance.json')}")

# %% [markdown]
# ## Summary
#
# * The two runs trained on the same batches from the same initial weights; only the objective differed.
# * Test Dice (average over structures): MyoPS {glue:text}`dice_myops_4:.3f` with ModelMix against
#   {glue:text}`dice_myops_2:.3f` with separate models; MSCMRseg {glue:text}`dice_mscmr_4:.3f` against
#   {glue:text}`dice_mscmr_2:.3f`.
# * {glue:md}`caveat`
# * `provenance.json` next to the runs says which code, data and configuration produced these numbers.
