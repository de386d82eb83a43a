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
# # Data: three cardiac MR tasks and their scribbles
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/modelmix-lite/modelmix_lite/blob/main/notebooks/01_data_preparation.ipynb)
#
# ModelMix {cite}`zhang2024modelmix` learns several segmentation tasks together: it interpolates the
# encoders of their networks. So before any training we need the tasks side by side: what each dataset
# contains, how its files and labels are encoded, what a scribble looks like, and what the network will
# actually be fed. This notebook:
#
# 1. introduces the three datasets (cine, LGE and multi-sequence cardiac MR);
# 2. finds or generates the data and checks it with `inspect`;
# 3. shows cases, slices and scribbles;
# 4. measures how much of each structure the scribbles cover;
# 5. draws the few-scribble split (5 scribbled volumes, the rest unlabeled);
# 6. builds the normalised 2-D slices the network trains on.
#
# The library does the work (`modelmix_lite.data`, figures in `modelmix_lite.viz`); the notebook explains it.
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
profile = os.environ.get("MODELMIX_PROFILE", "cpu")   # smoke | cpu | cpu_long | gpu | paper
data_root = None   # None -> the synthetic phantom; or a folder with ACDC_dataset/, MSCMR_dataset/, MyoPS/
seed = 0

# %%
from modelmix_lite.tutorial import state_runtime

state_runtime('01_data_preparation')

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown

from modelmix_lite.data.scribbles import scribble_stats_frame
from modelmix_lite import tutorial, viz
from modelmix_lite.config import PROFILES
from modelmix_lite.data.inspect import format_report, inspect_dataset
from modelmix_lite.data.layout import SPLITS
from modelmix_lite.data.readers import load_split
from modelmix_lite.data.slices import SliceDataset, few_scribble_split
from modelmix_lite.models import as_model_input

profile = tutorial.resolve_profile(profile)
config = PROFILES[profile]
print(f"profile: {profile} (slices of {config.size}x{config.size}, {config.n_scribbled} scribbled volumes per task)")
for key, value in tutorial.describe_environment().items():
    print(f"{key:>14}: {value}")

# %% [markdown]
# ## The three datasets
#
# All three are stacks of short-axis slices through the heart: thick slices (5-15 mm) of fine in-plane
# resolution (1-2 mm), from the base of the ventricles down to the apex. The networks are 2-D, so every slice
# is one training sample.
#
# * **ACDC** {cite}`bernard2018acdc`: 100 patients imaged with *cine* bSSFP, a sequence in which blood is
#   bright and muscle dark. Each patient gives two volumes, at end-diastole (ED) and end-systole (ES).
#   Classes: RV, MYO (myocardium) and LV (the left-ventricular cavity). Expert scribbles come from
#   {cite}`valvano2021attention`.
# * **MSCMRseg** {cite}`zhuang2019mscmr`: 45 patients with cardiomyopathy, imaged with *LGE* (late gadolinium
#   enhancement). Contrast agent lingers in scar; healthy myocardium is nulled to dark. Same classes as ACDC;
#   scribbles from CycleMix {cite}`zhang2022cyclemix`.
# * **MyoPS 2020** {cite}`li2023myops`: 45 patients, each imaged with **three** registered sequences:
#   bSSFP (`C0`), LGE (`DE`) and T2 (edema is bright in T2). The targets are myocardial **scar** and
#   **edema**; MYO and LV are labelled too, RV is not a target and is folded into background. Scribbles from
#   ZScribbleSeg {cite}`zhang2023zscribbleseg`.
#
# Why these three? They show the same anatomy through different contrasts. The structure tasks (ACDC, MSCMR)
# have clear boundaries and can lend a "sense of the heart" to the harder pathology task (MyoPS), which is
# exactly what mixing encoders is meant to exploit. The task specifications live in one place,
# `modelmix_lite.data.tasks.TASKS`:

# %%
tutorial.task_table()

# %% [markdown]
# Every model takes **3 input channels**. The MyoPS sequences fill them; single-sequence tasks repeat their
# image three times (`models.as_model_input`, as in the authors' code). That makes all encoders the same
# shape, which parameter interpolation needs.
#
# ## Where the data lives
#
# The readers expect the folder layouts of the authors' released data: `ACDC_dataset/`, `MSCMR_dataset/` and
# `MyoPS/` (+ `MyoPS_scribbles/`) under one *data root*.
# [data/README.md](https://github.com/modelmix-lite/modelmix_lite/blob/main/data/README.md) says where to
# download each dataset and shows the exact layout and label encodings.
#
# Without `data_root`, the notebook uses the **synthetic phantom**: small volumes sliced from a parametric 3-D
# heart, written in the very same layouts with the same raw label values, quirks included (MyoPS marks
# *unannotated* scribble pixels 0 and background scribbles 3000, for example). Everything below therefore
# runs unchanged on the real data. The phantom is generated on first use and then reused.

# %%
data_root = tutorial.resolve_data_root(data_root, profile, seed)
tasks = tutorial.available_tasks(data_root)
print(f"data root: {data_root}\ntasks found: {', '.join(tasks)}")

# %% [markdown]
# ## Check before you train: `inspect`
#
# A wrong label map or a mis-paired file does not crash training; it quietly teaches the network nonsense. So
# each dataset is checked first (`python -m modelmix_lite inspect` does the same from the shell). `inspect`
# pairs files **by subject name** (the released loaders pair them by sorted position), checks that images,
# labels and scribbles share a grid, maps raw label values to the canonical classes (it lists both, so an
# unexpected value shows up here rather than in a loss curve), and reports every problem it finds. On the
# phantom there should be none.

# %%
reports = {task: inspect_dataset(task, data_root) for task in tasks}
for report in reports.values():
    print(format_report(report), end="\n\n")
n_problems = sum(len(report["problems"]) for report in reports.values())
tutorial.glue("n_problems", n_problems)

# %% [markdown]
# Canonical labels are class indices `0 .. n_classes-1`; in scribbles, **255 means unannotated**. That is
# not background: it is "unknown", and the losses ignore it.
#
# ## Load the splits
#
# Each split is a list of `Case` objects: `image` is `(C, X, Y, Z)` float32 with the sequences as channels,
# `label` and `scribble` are `(X, Y, Z)` uint8 (or `None` where the dataset has none; the real ACDC and
# MSCMR training sets, for instance, come with scribbles only).

# %%
cases = {task: {split: load_split(task, data_root, split) for split in SPLITS} for task in tasks}
n_cases = sum(len(split_cases) for by_split in cases.values() for split_cases in by_split.values())
for task, by_split in cases.items():
    print(f"{task:>6}: " + ", ".join(f"{len(c)} {split}" for split, c in by_split.items()))
tutorial.glue("n_cases", n_cases)

# %% [markdown]
# ## A first look
#
# One case per task at a mid-ventricular slice: ground truth on top, scribbles below. The view is zoomed to
# the heart. Note how the contrast changes: bright blood pools in cine and `C0`, dark healthy myocardium in
# LGE (`DE`), bright edema in T2. The scribbles are thin strokes inside each structure plus one stroke of
# background around the heart; nearly every pixel stays unannotated.

# %%
examples = {task: (tutorial.with_label_and_scribble(by_split["train"]) or by_split["train"])[0]
            for task, by_split in cases.items()}
viz.dataset_overview(examples)
plt.show()

# %% [markdown]
# Through the volume, base (left) to apex (right), one row per sequence: the RV shrinks and disappears
# towards the apex, the LV cavity narrows, and the few MyoPS slices cover only the middle of the heart.

# %%
for case in examples.values():
    viz.case_montage(case)
    plt.show()

# %% [markdown]
# The same in an interactive viewer (slice slider, sequence menu, overlay toggles). It needs a live kernel,
# so it does nothing in the static book: run it in Jupyter or Colab.

# %% tags=["skip-execution"]
viz.slice_viewer(examples[tasks[-1]])

# %% [markdown]
# ## How much do scribbles annotate?
#
# The *coverage* of a class is the fraction of its ground-truth pixels that carry a scribble of that class.
# It is what a scribble-supervised loss gets to see. Only cases with both ground truth and scribbles can be
# measured (on the real data: ACDC validation and test).

# %%
annotated_cases = [case for task in tasks for split in SPLITS
                   for case in tutorial.with_label_and_scribble(cases[task][split])]
coverage = scribble_stats_frame(annotated_cases)
viz.plot_scribble_stats(coverage)
plt.show()
coverage.pivot_table(index="task", columns="class", values="coverage", sort=False).style.format("{:.1%}", na_rep="-")

# %%
structures = coverage[coverage["class"] != "background"]
tutorial.glue("structure_coverage", structures["coverage"].mean())
tutorial.glue("background_coverage", coverage[coverage["class"] == "background"]["coverage"].mean())

# %% [markdown]
# The real ACDC expert scribbles cover about **6-18 % of each structure** and **0.6 % of the background**
# (the grey band and the dashed line). The phantom's synthetic scribbles are drawn to match: on average they
# cover {glue:text}`structure_coverage:.1%` of a structure and {glue:text}`background_coverage:.2%` of the
# background. MyoPS *edema* stands out: its class is edema **outside** the scar, often a thin rim, so one
# stroke already covers a large share of it. Either way, a scribbled slice labels a few percent of its pixels
# at most, and the rest of the supervision must come from somewhere else: the unlabeled data, the
# perturbations and, in ModelMix, the other tasks.
#
# ## The few-scribble split
#
# The paper trains on **five randomly selected scribbled volumes** per dataset; the rest of the training set
# is used *without* labels, and feeds only the unsupervised terms (the invariance and vicinal consistency
# losses). In ACDC a volume is one frame, so the five may include both frames of one patient, as in the
# authors' code. `few_scribble_split` sorts the subjects first, so the choice depends only on the set of
# subjects and the seed. (The authors' code takes the first five MSCMR and MyoPS subjects in sorted order
# instead.)

# %%
splits = {task: few_scribble_split([case.subject for case in cases[task]["train"]], config.n_scribbled, seed)
          for task in tasks}
for task, (scribbled, unlabeled) in splits.items():
    print(f"{task}\n  scribbled ({len(scribbled)}): {', '.join(scribbled)}")
    print(f"  unlabeled ({len(unlabeled)}): {', '.join(unlabeled)}")

# %% [markdown]
# ## What the network sees
#
# `SliceDataset` turns volumes into 2-D training samples, once, in memory:
#
# * **intensity**: each channel is clipped at its 0.5th and 99.5th volume percentiles (a few very bright
#   pixels would otherwise squash the contrast), then each slice is scaled to [0, 1] (paper §3.1);
# * **geometry**: each slice is resampled in-plane to the profile's pixel size (`spacing_mm`) and the centred
#   `size × size` window is cut from it, or padded where the image is smaller
#   ({py:func}`~modelmix_lite.data.geometry.fit_slice`): every scanner's heart spans the same number of pixels.
#   The paper writes "resized to 256 × 256"; the released code crops at native resolution, which the `paper`
#   profile keeps. Scribbles are resampled so that thin strokes survive: a coarse pixel takes the class that
#   covers most of its window among the annotated pixels ({py:func}`~modelmix_lite.data.geometry.resample_labels`);
# * **targets**: the scribbles of the five scribbled subjects, and 255 (unannotated) everywhere else, in the
#   padding too: padding is not evidence of background.
#
# Below, half the columns are slices with a target and half slices without (unlabeled subjects, or slices
# beyond the heart), on the fixed [0, 1] grey scale the network receives.

# %%
datasets = {task: SliceDataset(cases[task]["train"], size=config.size, spacing_mm=config.spacing_mm,
                             scribbled_subjects=splits[task][0])
            for task in tasks}
for task, dataset in datasets.items():
    model_input = as_model_input(dataset[0]["image"][None])
    print(f"{task}: {len(dataset)} slices, {dataset.annotated.mean():.0%} with a target; "
          f"image {tuple(dataset.images.shape[1:])} in [{dataset.images.min():.1f}, {dataset.images.max():.1f}], "
          f"model input {tuple(model_input.shape[1:])}")
    viz.network_inputs(dataset)
    plt.show()
tutorial.glue("n_slices", sum(len(dataset) for dataset in datasets.values()))

# %% [markdown]
# ## Real patients
#
# The public releases read the same way: `python -m modelmix_lite download all --out data/real --accept-terms`
# fetches ACDC, MSCMRseg and the MyoPS scribbles (each file checked against its SHA-256), then runs `inspect`.
# {glue:md}`real_data_note`

# %%
real_root = tutorial.real_data_root()
tutorial.glue("real_data_note", Markdown(tutorial.real_data_note(real_root)))
if real_root is not None:
    viz.dataset_overview({task: load_split(task, real_root, "val")[0] for task in tutorial.available_tasks(real_root)
                          if task != "myops"})  # no MyoPS image is public
    plt.show()

# %% [markdown]
# ## Summary
#
# * The data root held {glue:text}`n_cases` cases; `inspect` found {glue:text}`n_problems` problems.
# * Scribbles annotate {glue:text}`structure_coverage:.1%` of a structure and
#   {glue:text}`background_coverage:.2%` of the background on average; everything else is unannotated (255),
#   which is not the same as background.
# * Each task keeps five scribbled volumes; the others train without labels.
# * The network sees {glue:text}`n_slices` normalised training slices in all, each with 3 input channels.
#
# Next: the perturbations (cutout, mixup) that the invariance loss is built on.
