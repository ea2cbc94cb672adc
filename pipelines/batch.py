"""The batch (email channel) pipeline: top-N per user of a segment, with explanations, for a mailing system.

ingest (interaction history) -> batch_recommend (the served model runtime: CF + CB candidates, hybrid
ranker, category cap, exclusions) -> parquet + CSV. Uncached: the history and the champion change.
"""

from kfp import dsl

from components.batch_recommend.component import batch_recommend
from components.ingest.component import ingest
from pipelines.tasks import configure_task

PIPELINE_NAME = "smartreco-batch"
RESOURCES = {"ingest": ("500m", "1", "1Gi", "2Gi"), "batch-recommend": ("1", "2", "2Gi", "6Gi")}


@dsl.pipeline(name=PIPELINE_NAME, description="SmartReco email batch: top-N per user of a segment with explanations")
def batch_pipeline(
    source: str = "movielens",
    model_uri: str = "models:/smartreco-hybrid@champion",
    segment: str = "all",
    n: int = 10,
    exclude_items: str = "",
    exclusions_path: str = "",
    max_category_share: float = 0.5,
    sample_users: int = 0,
) -> None:
    """``segment``: all | active:DAYS | min_events:N | users:ID,... | a file with user_id;
    ``exclusions_path``: (user_id, item_id) pairs never to mail; ``exclude_items``: ids for everyone."""
    ing = configure_task(ingest(source=source, sample_users=sample_users), "ingest", RESOURCES, cache=False,
                         retries=2)
    rec = batch_recommend(dataset=ing.outputs["dataset"], model_uri=model_uri, segment=segment, n=n,
                          exclude_items=exclude_items, exclusions_path=exclusions_path,
                          max_category_share=max_category_share)
    configure_task(rec, "batch-recommend", RESOURCES, cache=False)
