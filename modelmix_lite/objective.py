"""The ModelMix objective (Eq. 9) as one module: every loss term of every task and task pair, per iteration.

:class:`ModelMixObjective` holds the task models and one seeded generator for its random draws (mixing layer,
λ, mixup partners, cutout, rotation); :func:`build_objective` builds it for a method, tasks and configuration
as a training run does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from .baselines import baseline_terms
from .config import TrainConfig
from .errors import ConfigError
from .losses import (
    degenerate_reg_loss,
    invariance_loss,
    mixup_cross_entropy,
    partial_cross_entropy,
    supervised_loss,
    total_loss,
    vicinal_reg_loss,
    vicinal_sup_loss,
)
from .methods import CoreConfig, MethodConfig
from .mixing import mixable_layers, random_layer, sample_lambda, virtual_forward
from .models import TaskModelSet
from .perturb import apply_cutout, cutout_mask, mixup, partner_index, rotate, rotate_labels, rotation_mask, to_device
from .sampling import STREAM_DROPOUT, STREAM_OBJECTIVE, Batch, derive_seed


def task_pairs(tasks: Sequence[str], scheme: str) -> list[tuple[str, str]]:
    """The ordered task pairs Ω of Eqs. 6-7: ``"all"`` (i, j), i ≠ j, or ``"first"``: those with the first task."""
    pairs = [(i, j) for i in tasks for j in tasks if i != j]
    return pairs if scheme == "all" else [(i, j) for i, j in pairs if tasks[0] in (i, j)]


class ModelMixObjective(nn.Module):
    """The training loss of one iteration over all tasks: Eq. 9 with the method's terms switched on.

    Per task ``i`` (batch ``x``, scribbles ``y``; the first ``n_scribbled`` rows are from scribbled
    subjects, the rest unlabeled):

    * ``x^c = 1_c ⊙ x`` — cutout (§2.1), when the method has L_inv; the host prediction ``f_i(x^c)``
      is shared by all terms below;
    * ``sup``   L_sup (Eq. 8; pCE alone unless ``method.dice``) on the scribbled rows (every row with
      ``core.sup_rows="batch"``), when there is no L_vicinal-sup (which contains it, Eq. 7);
    * ``inv``   Eq. 1 on all rows: mixup with an intra-batch partner, cosine to the mixed predictions
      (``mixce``: the released code's mixup cross-entropy, ``core.mixup_ce``);
    * for every pair ``(i, j)`` in Ω: the virtual model ``f̃_ij`` (one random mixable encoder layer,
      ``λ ~ Beta``, Eq. 5; on a rotated batch if ``core.rotate_virtual``), then
      ``vsup`` Eq. 7 on the rows of ``sup`` and ``vreg`` Eq. 6 on all rows, summed over ``j`` (a MyoPS host
      with ``core.myops_reg="degenerate"``: the released code's degenerate term instead of Eq. 6).

    A method with a ``baseline`` (Tables 2-3) has none of these: its terms per task are
    :func:`~modelmix_lite.baselines.baseline_terms` (eager: ``compile`` does not apply to them).

    ``forward`` returns ``(loss, terms)``, ``terms`` keyed ``"{term}/{task}"`` with a fixed key set,
    ``loss = total_loss(terms)``. All random draws come from :attr:`generator` (a CPU generator) and
    are copied to the device by :func:`~modelmix_lite.perturb.to_device` (pinned, ``non_blocking``);
    nothing is read back to the host, so a step never waits for the GPU. The targets' values are not
    checked here (the losses run with ``check=False``): :meth:`~modelmix_lite.sampling.TaskData.next_batch` checks each batch
    on the CPU before it is moved.

    Args:
        models: the task models (``TaskModelSet``).
        method, core: which terms, and how (see :mod:`modelmix_lite.methods`).
        seed: seed of :attr:`generator`.
        compile: run the task models' plain passes (host and mixup) through ``torch.compile``; the
            virtual model (``functional_call`` with swapped tensors) stays eager, so it never recompiles.
        priors: task -> ``(C,)`` class ratio (:func:`~modelmix_lite.data.class_ratio.class_prior`), required by the
            PU baselines; kept as non-persistent buffers ``prior_<task>`` (they move with the module and
            stay out of checkpoints).
    """

    def __init__(
        self, models: TaskModelSet, method: MethodConfig, core: CoreConfig, seed: int = 0, compile: bool = False,
        priors: Mapping[str, Tensor] | None = None,
    ):
        super().__init__()
        self.models = models
        # a plain dict, not registered: the compiled wrappers share the models' parameters
        self.forward_fns = {t: torch.compile(m) if compile else m for t, m in models.models.items()}
        self.method = method
        self.core = core
        self.generator = torch.Generator().manual_seed(seed)
        self.pairs = task_pairs(models.tasks, core.pairs) if method.mixes_models else []
        self.layers = {
            task: mixable_layers(model, include_bn=core.mix_bn) for task, model in models.models.items()
        }
        for task in models.tasks if method.needs_prior else ():
            if priors is None or task not in priors:
                raise ConfigError(f"--method {method.name}: needs the class ratio of task {task!r} (priors)")
            self.register_buffer(f"prior_{task}", torch.as_tensor(priors[task]), persistent=False)

    def _sup_rows(self, n: int, batch: int) -> int:
        """How many leading rows the supervised terms see (``core.sup_rows``): the scribbled ones, or all."""
        return n if self.core.sup_rows == "scribbled" else batch

    def _sup(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.method.dice:
            return supervised_loss(logits, target, self.core.dice_on, self.core.dice_average, check=False)
        return partial_cross_entropy(logits, target, check=False)

    def _cutout(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        size = max(1, round(self.core.cutout_size * x.shape[-1]))
        mask = cutout_mask(x.shape[0], *x.shape[2:], size, self.core.cutout_p, self.generator, x.device)
        return apply_cutout(x, mask, y, self.core.cutout_label_fill)

    def _invariance(self, task: str, x: Tensor, y: Tensor, probs: Tensor) -> dict[str, Tensor]:
        partner = to_device(partner_index(x.shape[0], self.generator, self.core.mixup_partner), x.device)
        x_mix, lam = mixup(x, x[partner], self.core.mixup_alpha, self.generator)
        logits_mix = self.forward_fns[task](x_mix)
        terms = {"inv": invariance_loss(logits_mix.softmax(1), probs, probs[partner], lam, self.core.cos_reduce)}
        if self.core.mixup_ce:
            terms["mixce"] = mixup_cross_entropy(logits_mix, y, y[partner], lam, check=False)
        return terms

    def _vicinal(self, i: str, j: str, x: Tensor, y: Tensor, n: int, logits: Tensor) -> dict[str, Tensor]:
        """Eqs. 5-7 for one ordered pair: the virtual model ``f̃_ij = h_i(ẽ)`` against the host ``f_i``."""
        layer = random_layer(self.layers[i], self.generator)
        lam = sample_lambda(self.core.lambda_alpha, x.device, self.generator)
        mask = y_v = None
        if self.core.rotate_virtual:
            angle = to_device(torch.rand((), generator=self.generator) * 360, x.device)
            x, y_v = rotate(x, angle, "nearest"), rotate_labels(y, angle)
            mask = rotation_mask(x.shape, angle, x.device)
        models = self.models.models
        logits_v = virtual_forward(models[i], models[j], layer, lam, x, self.core.detach_virtual)
        terms = {}
        if self.method.vicinal_sup:
            rows = self._sup_rows(n, len(y))
            target_v = None if y_v is None else y_v[:rows]
            terms["vsup"] = vicinal_sup_loss(
                logits_v[:rows], logits[:rows], y[:rows], self.core.dice_on, target_v, self.core.dice_average,
                check=False,
            )
        if self.method.vicinal_reg:
            probs_v = logits_v.softmax(1)
            if self.core.rotate_virtual:
                probs_v = rotate(probs_v, -angle, "nearest")
            if i == "myops" and self.core.myops_reg == "degenerate":
                terms["vreg"] = degenerate_reg_loss(probs_v, logits.softmax(1), mask)
            else:
                terms["vreg"] = vicinal_reg_loss(probs_v, logits.softmax(1), self.core.cos_reduce, mask)
        return terms

    def forward(self, batches: Mapping[str, Batch]) -> tuple[Tensor, dict[str, Tensor]]:
        """Eq. 9 for one iteration.

        Args:
            batches: task -> its :class:`~modelmix_lite.sampling.Batch` (``image`` with 3 channels) for every
                task of the model set.
        Returns:
            ``(loss, terms)``: the scalar total and the scalar terms it sums.
        """
        terms: dict[str, Tensor] = {}
        host: dict[str, tuple[Tensor, Tensor, int, Tensor]] = {}
        for task in self.models.tasks:
            x, y, n = batches[task]["image"], batches[task]["target"], batches[task]["n_scribbled"]
            if self.method.baseline:
                prior = getattr(self, f"prior_{task}", None)
                model = self.models.models[task]
                for name, value in baseline_terms(self.method.baseline, model, x, y, self.generator, self.core,
                                                  prior).items():
                    terms[f"{name}/{task}"] = value
                continue
            if self.method.inv:
                x, y = self._cutout(x, y)
            logits = self.forward_fns[task](x)
            host[task] = (x, y, n, logits)
            if not self.method.vicinal_sup:
                rows = self._sup_rows(n, len(y))
                terms[f"sup/{task}"] = self._sup(logits[:rows], y[:rows])
            if self.method.inv:
                for name, value in self._invariance(task, x, y, logits.softmax(1)).items():
                    terms[f"{name}/{task}"] = value
        for i, j in self.pairs:
            x, y, n, logits = host[i]
            for name, value in self._vicinal(i, j, x, y, n, logits).items():
                key = f"{name}/{i}"
                terms[key] = terms[key] + value if key in terms else value
        return total_loss(terms), terms


def build_objective(
    config: TrainConfig, method: MethodConfig, tasks: Sequence[str], device: torch.device, rank: int = 0,
    priors: Mapping[str, Tensor] | None = None,
) -> ModelMixObjective:
    """The task models (seeded by ``config.seed``) inside the objective, on ``device``; seeds the dropout stream.

    ``priors``: each task's class ratio, for the PU baselines (see :class:`ModelMixObjective`).
    """
    torch.manual_seed(derive_seed(config.seed, STREAM_DROPOUT, rank))  # dropout draws from the global torch RNG
    models = TaskModelSet(tasks, config.base, None if config.core.dropout == "none" else config.core.dropout,
                          config.norm, config.core.identical_init, method.shared_encoder,
                          torch.Generator().manual_seed(config.seed), aux_decoder=method.aux_decoder,
                          encoder_bn=config.core.encoder_bn)
    seed = derive_seed(config.seed, STREAM_OBJECTIVE, rank)
    core = config.core.with_physical_cutout(config.fov_mm)
    objective = ModelMixObjective(models, method, core, seed, config.compile, priors).to(device)
    if config.channels_last and device.type == "cuda":
        objective.to(memory_format=torch.channels_last)
    return objective
