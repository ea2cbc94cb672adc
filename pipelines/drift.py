"""The drift-monitoring pipeline: reference vs recent data (Evidently KS / chi-square) -> [drift] retrain.

Schedulable as a recurring run (``smartreco pipeline submit drift --schedule "0 0 3 * * *"``). Every
step is uncached: its whole point is to look at data that changed since the last run.
"""

from kfp import dsl

from components.drift_check.component import drift_check
from components.drift_inputs.component import drift_inputs
from components.retrain.component import retrain
from pipelines.tasks import configure_task

PIPELINE_NAME = "smartreco-drift"
RESOURCES = {"drift-inputs": ("500m", "1", "1Gi", "3Gi"), "drift-check": ("1", "2", "2Gi", "4Gi"),
             "retrain": ("250m", "2", "1Gi", "8Gi")}


def _configure(task: dsl.PipelineTask, step: str) -> dsl.PipelineTask:
    return configure_task(task, step, RESOURCES, cache=False)


@dsl.pipeline(name=PIPELINE_NAME, description="SmartReco drift: Evidently KS/chi-square vs the training reference; "
              "retrain when the drifted share passes the threshold")
def drift_pipeline(
    reference_source: str = "movielens",
    current_source: str = "",
    shift_strength: float = 0.0,
    reference_predictions: str = "",
    current_predictions: str = "",
    drift_threshold: float = 0.3,
    alpha: float = 0.05,
    max_rows: int = 20000,
    retrain_mode: str = "auto",
    kfp_host: str = "",
    training_args: str = '{"sample_users": 0}',
    seed: int = 7,
) -> None:
    """``current_source`` empty: random halves of the reference (``shift_strength`` > 0 shifts the current
    half, for demos/tests). ``retrain_mode``: auto | local | cluster | record; ``training_args``: JSON
    parameters of the training pipeline run it starts."""
    inputs = _configure(drift_inputs(reference_source=reference_source, current_source=current_source,
                                     shift_strength=shift_strength, seed=seed), "drift-inputs")
    check = _configure(drift_check(reference=inputs.outputs["reference"], current=inputs.outputs["current"],
                                   threshold=drift_threshold, alpha=alpha, max_rows=max_rows,
                                   reference_predictions=reference_predictions,
                                   current_predictions=current_predictions), "drift-check")
    with dsl.If(check.outputs["Output"] == True, name="drift-detected"):  # noqa: E712 - KFP condition
        task = retrain(reason="drift", mode=retrain_mode, host=kfp_host, training_args=training_args)
        _configure(task, "retrain")
