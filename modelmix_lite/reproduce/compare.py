"""Comparisons of recorded results: summaries, the paper's table layout, the ablation pattern, paired tests,
ours against the paper.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
from scipy.stats import spearmanr, wilcoxon

from ..errors import ConfigError, DataError
from ..metrics import format_distance, format_mean_std, summarize
from ..paper_results import published, table_structures
from .specs import MISSING, REAL_TABLES, ROLES, SHORT_NAMES, TABLES, get_table


def annotate(rows: pd.DataFrame) -> pd.DataFrame:
    """Result rows with the paper's ``row`` label, its ``role`` and Table 1's ``half`` (``""`` in Tables 2-3).

    Raises:
        DataError: a (table, method, tasks) that no table spec has.
    """
    lookup = {(spec.number, e.key, e.combo): e
              for tables in (TABLES, REAL_TABLES) for spec in tables.values() for e in spec.entries}
    keys = list(zip(rows["table"].astype(int), rows["method"], rows["tasks"]))
    unknown = sorted({k for k in keys if k not in lookup})
    if unknown:
        raise DataError(f"rows: no table row for (table, method, tasks) {unknown[0]}")
    return rows.assign(
        row=[lookup[k].row for k in keys],
        role=[lookup[k].role for k in keys],
        half=[k[2] if k[0] == 1 else "" for k in keys],
    )


_KEYS = ["table", "half", "row", "role", "method", "tasks", "target"]


def summarize_results(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over volumes × seeds for every table row, target and structure (``"Avg"`` pools structures).

    Returns:
        :func:`~modelmix_lite.metrics.summarize`'s columns keyed by table, half, row, role, method, tasks, target.
    """
    rows = annotate(rows)
    volumes = rows.assign(case=rows["case"] + "@seed" + rows["seed"].astype(str))
    return summarize(volumes[[*_KEYS, "case", "structure", "dice", "hd", "hd95"]])


def _row_order(table: int, half: str) -> list[str]:
    """Rows of a comparison table: the paper's, then any row the spec has and the paper does not."""
    paper = published(table)
    rows = list(dict.fromkeys(paper.loc[paper["half"] == half, "method"]))
    spec_rows = [e.row for e in TABLES[table].entries if (e.combo if table == 1 else "") == half]
    return rows + [r for r in spec_rows if r not in rows]


def comparison_table(rows: pd.DataFrame, table: int, metric: str = "dice", half: str = "") -> pd.DataFrame:
    """Our ``metric`` next to the paper's, in the paper's layout: one line per table row, ``mean±std`` cells.

    Args:
        rows: result rows (any tables; only ``table``'s are used), possibly empty.
        metric: ``"dice"`` (3 decimals) or ``"hd"`` (mm, 2 decimals).
        half: Table 1's task combination (``"myops+mscmr"`` or ``"myops+acdc"``); ``""`` for Tables 2-3.

    Returns:
        Index: the row labels; columns ``(target, structure, "ours" | "paper")``; :data:`~modelmix_lite.reproduce.specs.MISSING` where a side
        has no number (a row not run, or a metric the paper does not report). An HD cell of ours over fewer
        volumes than its Dice ends with the count (:func:`~modelmix_lite.metrics.format_distance`).
    """
    spec = get_table(table)
    halves = list(dict.fromkeys(e.combo for e in spec.entries)) if spec.number == 1 else [""]
    if half not in halves:
        raise ConfigError(f"half: Table {spec.number} has {' and '.join(map(repr, halves))}, not {half!r}")
    if metric not in ("dice", "hd"):
        raise ConfigError(f"metric: expected 'dice' or 'hd', got {metric!r}")
    digits = 3 if metric == "dice" else 2
    paper = published(spec.number)
    paper = paper[(paper["half"] == half) & (paper["metric"] == metric)]
    paper_cells = {(r.method, r.target, r.structure): format_mean_std(r.mean, r.std, digits)
                   for r in paper.itertuples()}
    ours = rows[rows["table"] == spec.number]
    ours_cells = {}
    if len(ours):
        summary = summarize_results(ours)
        for r in summary[summary["half"] == half].itertuples():
            mean, std = getattr(r, f"{metric}_mean"), getattr(r, f"{metric}_std")
            ours_cells[(r.row, r.target, r.structure)] = format_mean_std(mean, std, digits) if metric == "dice" \
                else format_distance(mean, std, r.hd_n, r.dice_n, digits)
    targets = half.split("+") if half else [spec.entries[0].targets[0]]
    columns = [(SHORT_NAMES[t], s, side) for t in targets for s in table_structures(t) for side in ("ours", "paper")]
    index = _row_order(spec.number, half)
    data = [[(ours_cells if side == "ours" else paper_cells).get((row, t, s), MISSING)
             for t in targets for s in table_structures(t) for side in ("ours", "paper")] for row in index]
    return pd.DataFrame(data, index=pd.Index(index, name="method"), columns=pd.MultiIndex.from_tuples(columns))


ABLATION_ORDER: tuple[tuple[str, str], ...] = (("#2", "#1"), ("#3", "#2"), ("#4", "#3"), ("#2", "#5"))
"""The pattern of Table 1 (§3.2): each pair (better, worse) in average Dice."""


def ablation_pattern(rows: pd.DataFrame) -> pd.DataFrame:
    """Does #4 > #3 > #2 > #1 and #5 < #2 (average Dice) hold, per half and target of Table 1?

    Returns:
        One line per (half, target): the average Dice of #1-#5 (NaN if not run), one boolean column per pair
        of :data:`ABLATION_ORDER` (``pd.NA`` if a side was not run), and ``holds``: all pairs true (``pd.NA`` if
        none is false but some could not be checked).
    """
    ours = rows[rows["table"] == 1]
    columns = ["half", "target", "#1", "#2", "#3", "#4", "#5", *(f"{a} > {b}" for a, b in ABLATION_ORDER), "holds"]
    if not len(ours):
        return pd.DataFrame(columns=columns)
    summary = summarize_results(ours)
    avg = summary[summary["structure"] == "Avg"].pivot_table(
        index=["half", "target"], columns="row", values="dice_mean", sort=False)
    avg = avg.reindex(columns=["#1", "#2", "#3", "#4", "#5"])
    for better, worse in ABLATION_ORDER:
        known = avg[better].notna() & avg[worse].notna()
        avg[f"{better} > {worse}"] = (avg[better] > avg[worse]).astype(object).where(known, pd.NA)
    checks = avg[[f"{a} > {b}" for a, b in ABLATION_ORDER]]
    holds = [False if any(v is False for v in c) else (True if c.notna().all() else pd.NA)
             for _, c in checks.iterrows()]
    return avg.assign(holds=holds).reset_index()[columns]


def pattern_verdict(pattern: pd.DataFrame) -> str:
    """One sentence on :func:`ablation_pattern`'s frame: held, did not hold (where and by how much), or unchecked."""
    if not len(pattern):
        return "could not be checked: Table 1 was not run"
    failures, unchecked = [], set()
    for line in pattern.to_dict("records"):
        for better, worse in ABLATION_ORDER:
            a, b = line[better], line[worse]
            if pd.isna(a) or pd.isna(b):
                unchecked.update(m for m, v in ((better, a), (worse, b)) if pd.isna(v))
            elif not a > b:
                failures.append(f"{better} > {worse} fails on {SHORT_NAMES[line['target']]} of {line['half']} "
                                f"({a:.3f} vs {b:.3f})")
    if failures:
        return "did not hold: " + "; ".join(failures)
    if unchecked:
        return f"held where it could be checked ({', '.join(sorted(unchecked))} not run)"
    return f"held on all {len(pattern)} (combination, task) pairs"


def wilcoxon_table(rows: pd.DataFrame, table: int) -> pd.DataFrame:
    """Paired two-sided Wilcoxon signed-rank test of each ModelMix row against the best baseline, per structure.

    Per (half, target), the best baseline is the ``"baseline"`` row with the highest mean Dice over all its
    (case, structure, seed) values (FullSup references excluded). Dice values are paired by (case, seed) within
    a structure; ``"Avg"`` pairs every (case, structure, seed). ``statistic`` and ``p_value`` are NaN when there
    is no pair or every difference is zero.

    Returns:
        Columns ``table, half, target, modelmix, baseline, structure, n, mean_diff, statistic, p_value``.
    """
    columns = ["table", "half", "target", "modelmix", "baseline", "structure", "n", "mean_diff", "statistic",
               "p_value"]
    ours = rows[rows["table"] == get_table(table).number]
    out = []
    for (half, target), group in (annotate(ours).groupby(["half", "target"], sort=False) if len(ours) else []):
        baselines = group[group["role"] == "baseline"]
        if baselines.empty:
            continue
        best = baselines.groupby("row", sort=False)["dice"].mean().idxmax()
        reference = group[group["row"] == best]
        for row, mm in group[group["role"] == "modelmix"].groupby("row", sort=False):
            for test in _paired_dice(mm, reference, target):
                out.append({"table": int(table), "half": half, "target": target, "modelmix": row, "baseline": best,
                            **test})
    return pd.DataFrame(out, columns=columns)


def _paired_dice(rows: pd.DataFrame, reference: pd.DataFrame, target: str) -> list[dict]:
    """Dice of ``rows`` minus ``reference``, paired by (case, seed, structure), per structure of ``target``.

    ``"Avg"`` pairs every (case, structure, seed). Returns one dict per structure: ``structure, n, mean, mean_ref,
    mean_diff, std_diff, statistic, p_value`` (a two-sided Wilcoxon signed-rank test; NaN when there is no pair
    or every difference is zero).
    """
    keys = ["case", "seed", "structure"]
    pairs = rows[[*keys, "dice"]].merge(reference[[*keys, "dice"]], on=keys, suffixes=("", "_ref"))
    out = []
    for structure in table_structures(target):
        part = pairs if structure == "Avg" else pairs[pairs["structure"] == structure]
        diff = (part["dice"] - part["dice_ref"]).to_numpy()
        test = wilcoxon(diff) if np.any(diff != 0) else None
        out.append({
            "structure": structure, "n": len(diff),
            "mean": part["dice"].mean() if len(diff) else np.nan,
            "mean_ref": part["dice_ref"].mean() if len(diff) else np.nan,
            "mean_diff": diff.mean() if len(diff) else np.nan,
            "std_diff": diff.std(ddof=0) if len(diff) else np.nan,
            "statistic": np.nan if test is None else float(test.statistic),
            "p_value": np.nan if test is None else float(test.pvalue),
        })
    return out


def preset_comparison(rows: pd.DataFrame) -> pd.DataFrame:
    """Each ``"preset"`` row of Table 1 against the ``paper`` row of its method, paired by (case, seed), per target.

    The Reproducibility chapter's comparison: ``"#4 (released code)"`` (``#4@released_code``) against ``"#4"``,
    same tasks, profile and seeds. Dice values are paired by (case, seed) within a structure; ``"Avg"`` pairs
    every (case, structure, seed).

    Returns:
        Columns ``target, row, reference, structure, n, mean, mean_ref, mean_diff, std_diff, statistic, p_value``
        (``mean``: the preset row's mean Dice; ``mean_ref``: the paper row's over the same pairs).
    """
    columns = ["target", "row", "reference", "structure", "n", "mean", "mean_ref", "mean_diff", "std_diff",
               "statistic", "p_value"]
    ours = annotate(rows[rows["table"] == 1]) if len(rows) else rows
    out = []
    for (tasks, target), group in (ours.groupby(["tasks", "target"], sort=False) if len(ours) else []):
        for key in dict.fromkeys(group.loc[group["role"] == "preset", "method"]):
            method = key.partition("@")[0]
            reference = group[group["method"] == method]
            if reference.empty:
                continue
            variant = group[group["method"] == key]
            row = variant["row"].iloc[0]
            out += [{"target": target, "row": row, "reference": reference["row"].iloc[0], **test}
                    for test in _paired_dice(variant, reference, target)]
    return pd.DataFrame(out, columns=columns)


def preset_verdict(comparison: pd.DataFrame, alpha: float = 0.05) -> str:
    """One sentence on :func:`preset_comparison`'s ``"Avg"`` lines: per target, which preset is higher, by how much,
    and whether the paired test calls it (p < ``alpha``); "not recorded" when there is nothing to compare."""
    avg = comparison[comparison["structure"] == "Avg"]
    if not len(avg):
        return "not recorded"
    parts = []
    for line in avg.itertuples():
        side = "released code higher" if line.mean_diff > 0 else "paper preset higher"
        called = "beyond" if line.p_value < alpha else "within"
        parts.append(f"{SHORT_NAMES[line.target]}: {side} by {abs(line.mean_diff):.3f} of average Dice, {called} "
                     f"what the paired test can tell from chance (p = {line.p_value:.1e}, {line.n} pairs)")
    return "; ".join(parts)


def head_to_head(rows: pd.DataFrame, table: int) -> pd.DataFrame:
    """ModelMix's best row against the best baseline on average Dice, ours and the paper's, per (half, target).

    Returns:
        Columns ``table, half, target, modelmix, dice, baseline, baseline_dice, gap`` (ours) and
        ``paper_dice, paper_baseline_dice, paper_gap``: the paper's numbers for the same two rows.
    """
    spec = get_table(table)
    columns = ["table", "half", "target", "modelmix", "dice", "baseline", "baseline_dice", "gap",
               "paper_dice", "paper_baseline_dice", "paper_gap"]
    ours = rows[rows["table"] == spec.number]
    if not len(ours):
        return pd.DataFrame(columns=columns)
    summary = summarize_results(ours)
    summary = summary[summary["structure"] == "Avg"]
    paper = published(spec.number)
    paper = paper[(paper["metric"] == "dice") & (paper["structure"] == "Avg")]
    out = []
    for (half, target), group in summary.groupby(["half", "target"], sort=False):
        best = {role: group[group["role"] == role].sort_values("dice_mean").tail(1) for role in ROLES[:2]}
        if any(b.empty for b in best.values()):
            continue
        mm, base = best["modelmix"].iloc[0], best["baseline"].iloc[0]
        lookup = paper[(paper["half"] == half) & (paper["target"] == target)].set_index("method")["mean"]
        paper_mm, paper_base = lookup.get(mm["row"], np.nan), lookup.get(base["row"], np.nan)
        out.append({
            "table": spec.number, "half": half, "target": target, "modelmix": mm["row"], "dice": mm["dice_mean"],
            "baseline": base["row"], "baseline_dice": base["dice_mean"], "gap": mm["dice_mean"] - base["dice_mean"],
            "paper_dice": paper_mm, "paper_baseline_dice": paper_base, "paper_gap": paper_mm - paper_base,
        })
    return pd.DataFrame(out, columns=columns)


def ours_vs_paper(rows: pd.DataFrame) -> pd.DataFrame:
    """Average Dice of every table row and target we ran, next to the paper's (NaN where it has none).

    Returns:
        Columns ``table, half, target, row, role, ours, paper``.
    """
    columns = ["table", "half", "target", "row", "role", "ours", "paper"]
    if not len(rows):
        return pd.DataFrame(columns=columns)
    summary = summarize_results(rows)
    summary = summary[summary["structure"] == "Avg"].rename(columns={"dice_mean": "ours"})
    paper = published()
    paper = paper[(paper["metric"] == "dice") & (paper["structure"] == "Avg")]
    paper = paper.rename(columns={"method": "row", "mean": "paper"})[["table", "half", "target", "row", "paper"]]
    return summary.merge(paper, on=["table", "half", "target", "row"], how="left")[columns]


def rank_agreement(pairs: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rank correlation of our and the paper's average Dice over the rows of each table.

    Args:
        pairs: :func:`ours_vs_paper`'s frame.

    Returns:
        Columns ``table, n, spearman`` (NaN with fewer than 3 rows having both numbers).
    """
    out = []
    for table, part in pairs.dropna(subset=["ours", "paper"]).groupby("table"):
        rho = spearmanr(part["ours"], part["paper"]).statistic if len(part) >= 3 else np.nan
        out.append({"table": int(table), "n": len(part), "spearman": float(rho)})
    return pd.DataFrame(out, columns=["table", "n", "spearman"])


def seed_spread(rows: pd.DataFrame) -> pd.DataFrame:
    """How much a row's average Dice moves between seeds: is a gap between two rows larger than that?

    Returns:
        One line per (table, half, target, row): ``n_seeds``, ``mean`` and ``sd`` (sample std, NaN for one seed)
        of the per-seed average Dice (over volumes and structures).
    """
    columns = ["table", "half", "target", "row", "n_seeds", "mean", "sd"]
    if not len(rows):
        return pd.DataFrame(columns=columns)
    keys = ["table", "half", "target", "row"]
    per_seed = annotate(rows).groupby([*keys, "seed"], sort=False)["dice"].mean()
    spread = per_seed.groupby(level=keys, sort=False).agg(n_seeds="count", mean="mean", sd="std")
    return spread.reset_index()[columns]
