"""KFP component: top-N per user of a segment with explanations, parquet + CSV for a mailing system."""

from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from components.common import component


@component()
def batch_recommend(dataset: Input[Dataset], recommendations: Output[Dataset],
                    summary: Output[Markdown], metrics: Output[Metrics],
                    model_uri: str = "models:/smartreco-hybrid@champion", segment: str = "all", n: int = 10,
                    exclude_items: str = "", exclusions_path: str = "", max_category_share: float = 0.5) -> int:
    """Returns the number of rows. ``model_uri``: ``models:/`` URI (resolved with MLflow) or a bundle folder.
    ``exclude_items``: comma-separated ids excluded for everyone;
    ``exclusions_path``: CSV/parquet of (user_id, item_id) pairs excluded per user."""
    from pathlib import Path

    import pandas as pd

    from smartreco.batch import recommend_batch, write_batch
    from smartreco.data.io import load_folder
    from smartreco.serving.bundle import ModelBundle
    from smartreco.serving.model_uri import resolve_local

    pairs = None
    if exclusions_path:
        pairs = pd.read_parquet(exclusions_path) if exclusions_path.endswith(".parquet") else pd.read_csv(
            exclusions_path, dtype=str)
    data = load_folder(Path(dataset.path))
    res = recommend_batch(ModelBundle.load(resolve_local(model_uri)), data.interactions, segment=segment, n=n,
                          exclude_items=[i for i in exclude_items.split(",") if i.strip()],
                          exclude_pairs=pairs, max_category_share=max_category_share)
    files = write_batch(res, recommendations.path)
    for key, value in res.metrics().items():
        metrics.log_metric(key, float(value))
    Path(summary.path).write_text(
        f"# Email batch\n\n- segment: `{segment}`, top-{n} per user\n- users: {res.users}, rows: {len(res.frame)}, "
        f"short lists: {res.short_users}\n- files: `{files['parquet']}`, `{files['csv']}`\n\n"
        + res.to_markdown(20))
    return len(res.frame)
