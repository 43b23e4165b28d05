"""Maintainability, measured: the mechanisms of Lab 2 (complexity vs maintainability).

Lab 2 asks whether a more complex model's accuracy gain pays for what it costs to keep alive. This
package trains, retrains, perturbs and times; what the numbers mean is measured by the learner's
own functions in the lab (prediction churn, CACE sensitivity, the paired interval, the scorecard).

* :mod:`.ladder` — the four models, simplest first (:func:`model_ladder`), seeds and thread limits;
* :mod:`.retrain` — retrain with another seed or 1% of the rows changed (:func:`retrain_predictions`),
  or with one extra column (:func:`entanglement_test`); both return predictions
  (churn: Milani Fard, Cormier, Canini & Gupta, "Launch and Iterate: Reducing Prediction Churn",
  NeurIPS 2016);
* :mod:`.cace` — the upstream changes a column really goes through and :func:`cace_sweep`, which
  runs a caller's measure over model x feature x change ("Changing Anything Changes Everything":
  Sculley et al., "Hidden Technical Debt in Machine Learning Systems", NeurIPS 2015);
* :mod:`.stats` — ROC AUC with a bootstrap interval and the test-set size a paired comparison
  needs (:func:`detectable_gain`, :func:`rows_to_resolve`);
* :mod:`.costs` — training time, latency, size, hyperparameters, code dependencies, lines of code.

``from tradeoffs import maintainability as maint`` gives every public name below.
"""

from __future__ import annotations

from ..threads import limit_threads
from .cace import (Perturbation, cace_sweep, clipping, drift, missing_fill, unit_change,
                   upstream_perturbations)
from .costs import (CodeDependencies, code_dependencies, cost_profile, count_hyperparameters, fit_time,
                    model_size_bytes, prediction_latency, source_lines)
from .ladder import (LADDER, NON_TUNING_PARAMS, ModelSpec, make_gradient_boosting,
                     make_logistic, make_mlp, make_stacked, model_ladder, with_seed)
from .retrain import CHURN_KINDS, EntanglementResult, entanglement_test, perturb_rows, retrain_predictions
from .stats import Interval, auc_ci, auc_score, detectable_gain, rows_to_resolve

__all__ = [
    "CHURN_KINDS", "CodeDependencies", "EntanglementResult", "Interval", "LADDER", "ModelSpec",
    "NON_TUNING_PARAMS", "Perturbation", "auc_ci", "auc_score", "cace_sweep", "clipping",
    "code_dependencies", "cost_profile", "count_hyperparameters", "detectable_gain", "drift",
    "entanglement_test", "fit_time", "limit_threads", "make_gradient_boosting", "make_logistic",
    "make_mlp", "make_stacked", "missing_fill", "model_ladder", "model_size_bytes", "perturb_rows",
    "prediction_latency", "retrain_predictions", "rows_to_resolve", "source_lines", "unit_change",
    "upstream_perturbations", "with_seed",
]
