"""Figures for the tutorials, one module per subject; every function returns its :class:`~matplotlib.figure.Figure`.

The rule: figures take arrays, cases and frames. They never load data, train or call autograd; what a figure
draws is computed by the module of its subject (:mod:`~modelmix_lite.probes` for gradients, dropout and
cosine readings; :mod:`~modelmix_lite.data.geometry` for a case's slices and heart window;
:func:`~modelmix_lite.sampling.example_batch` for a batch). Volumes follow the readers' conventions: images
``(C, X, Y, Z)``, labels and scribbles ``(X, Y, Z)``, slices along Z; a 2-D slice ``(X, Y)`` is drawn with X to
the right and Y upwards.

* :mod:`~modelmix_lite.viz.style`: class colours, legends, overlays;
* :mod:`~modelmix_lite.viz.data`: cases, the dataset, scribbles, network inputs;
* :mod:`~modelmix_lite.viz.perturbations`: cutout, mixup, invariance, augmentation, dropout (§2.1);
* :mod:`~modelmix_lite.viz.losses`: gradients and cosines of the vicinal losses (Eqs. 6-8);
* :mod:`~modelmix_lite.viz.mixing`: parameter interpolation (Eq. 5);
* :mod:`~modelmix_lite.viz.results`: training curves, Dice, qualitative cases, the paper comparisons.
"""

from .style import (
    CLASS_COLORS,
    LABEL_ALPHA,
    class_colors,
    class_legend,
    overlay,
    PADDING_COLOR,
    CUTOUT_EDGE,
    probability_rgb,
)
from .data import (
    ACDC_SCRIBBLE_BAND,
    ACDC_BACKGROUND_COVERAGE,
    MONTAGE_LAYERS,
    case_montage,
    dataset_overview,
    plot_scribble_stats,
    network_inputs,
    slice_viewer,
)
from .perturbations import (
    plot_cutout,
    plot_mixup_grid,
    plot_beta_densities,
    plot_invariance,
    plot_augmentations,
    plot_domain_gap,
    plot_dropout_variance,
)
from .losses import (
    GRADIENT_FLOOR,
    plot_gradient_maps,
    plot_cosine_examples,
    plot_gradient_flow,
)
from .mixing import (
    DRIFT_FLOOR,
    plot_feature_mix,
    plot_lambda_sweep,
    lambda_slider,
    plot_drift_curves,
    plot_drift_heatmap,
)
from .results import (
    plot_loss_terms,
    plot_training_curves,
    QUALITATIVE_SEQUENCES,
    plot_validation_curves,
    plot_dice_strip,
    plot_qualitative,
    plot_dice_by_method,
    plot_ours_vs_paper,
)

__all__ = [
    "CLASS_COLORS",
    "LABEL_ALPHA",
    "class_colors",
    "class_legend",
    "overlay",
    "PADDING_COLOR",
    "CUTOUT_EDGE",
    "probability_rgb",
    "ACDC_SCRIBBLE_BAND",
    "ACDC_BACKGROUND_COVERAGE",
    "MONTAGE_LAYERS",
    "case_montage",
    "dataset_overview",
    "plot_scribble_stats",
    "network_inputs",
    "slice_viewer",
    "plot_cutout",
    "plot_mixup_grid",
    "plot_beta_densities",
    "plot_invariance",
    "plot_augmentations",
    "plot_domain_gap",
    "plot_dropout_variance",
    "GRADIENT_FLOOR",
    "plot_gradient_maps",
    "plot_cosine_examples",
    "plot_gradient_flow",
    "DRIFT_FLOOR",
    "plot_feature_mix",
    "plot_lambda_sweep",
    "lambda_slider",
    "plot_drift_curves",
    "plot_drift_heatmap",
    "plot_loss_terms",
    "plot_training_curves",
    "QUALITATIVE_SEQUENCES",
    "plot_validation_curves",
    "plot_dice_strip",
    "plot_qualitative",
    "plot_dice_by_method",
    "plot_ours_vs_paper",
]
