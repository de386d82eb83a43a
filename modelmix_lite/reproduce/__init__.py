"""Reproduce the paper's Tables 1-3: train every row × seed, score it, and compare with the published numbers.

* :mod:`~modelmix_lite.reproduce.specs`: what each table trains and scores (:data:`~modelmix_lite.reproduce.specs.TABLES`,
  :data:`~modelmix_lite.reproduce.specs.REAL_TABLES`);
* :mod:`~modelmix_lite.reproduce.sweep`: running and resuming a sweep, its files
  (:func:`~modelmix_lite.reproduce.sweep.run_table`);
* :mod:`~modelmix_lite.reproduce.compare`: tables in the paper's layout, the ablation pattern, paired tests;
* :mod:`~modelmix_lite.reproduce.diagnostics`: provenance, training diagnostics, the error breakdown, figure inputs;
* :mod:`~modelmix_lite.reproduce.command`: the ``reproduce`` command.
"""

from .specs import (
    RESULT_COLUMNS,
    ROLES,
    SHORT_NAMES,
    MISSING,
    Entry,
    TableSpec,
    TABLES,
    REAL_TABLES,
    get_table,
    sweep_folder,
    default_seeds,
    parse_seeds,
    select_entries,
)
from .sweep import (
    results_path,
    run_dir,
    data_differs,
    load_results,
    load_predictions,
    score_run,
    trained_elsewhere,
    run_table,
    load_or_sweep,
    SMOKE_SWEEP,
    TableResults,
)
from .compare import (
    annotate,
    summarize_results,
    comparison_table,
    ABLATION_ORDER,
    ablation_pattern,
    pattern_verdict,
    wilcoxon_table,
    preset_comparison,
    preset_verdict,
    head_to_head,
    ours_vs_paper,
    rank_agreement,
    seed_spread,
)
from .diagnostics import (
    qualitative_inputs,
    provenance,
    minutes_to_dice,
    run_diagnostics,
    error_breakdown,
)
from .command import (
    main_reproduce,
)

__all__ = [
    "RESULT_COLUMNS",
    "ROLES",
    "SHORT_NAMES",
    "MISSING",
    "Entry",
    "TableSpec",
    "TABLES",
    "REAL_TABLES",
    "get_table",
    "sweep_folder",
    "default_seeds",
    "parse_seeds",
    "select_entries",
    "results_path",
    "run_dir",
    "data_differs",
    "load_results",
    "load_predictions",
    "score_run",
    "trained_elsewhere",
    "run_table",
    "load_or_sweep",
    "SMOKE_SWEEP",
    "TableResults",
    "annotate",
    "summarize_results",
    "comparison_table",
    "ABLATION_ORDER",
    "ablation_pattern",
    "pattern_verdict",
    "wilcoxon_table",
    "preset_comparison",
    "preset_verdict",
    "head_to_head",
    "ours_vs_paper",
    "rank_agreement",
    "seed_spread",
    "qualitative_inputs",
    "provenance",
    "minutes_to_dice",
    "run_diagnostics",
    "error_breakdown",
    "main_reproduce",
]
