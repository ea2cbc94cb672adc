"""`smartreco train`: CF, CB, hybrid, evaluation, MLflow run + registry, serving bundle."""

from __future__ import annotations

import json

import click


@click.command("train")
@click.option("--source", default="movielens", show_default=True, help="movielens, synthetic or a canonical folder")
@click.option("--out", "out_dir", default=None, help="output folder (default: runs/train/<timestamp>)")
@click.option("--encoder", type=click.Choice(["minilm+tfidf+numeric", "minilm", "hashed"]),
              default="minilm+tfidf+numeric", show_default=True,
              help="content vectors: MiniLM sentence embeddings + TF-IDF + numeric item features (served; "
                   "'minilm' is the same) or hashed tags/categories (instant)")
@click.option("--peers", default="mostpop,ease", show_default=True,
              help="comma-separated peers evaluated next to the hybrid (mostpop,itemknn,ease,als or all)")
@click.option("--no-mlflow", is_flag=True, help="skip the MLflow run and registry")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def train(source: str, out_dir: str | None, encoder: str, peers: str, no_mlflow: bool, as_json: bool) -> None:
    """Train and evaluate (ARCHITECTURE §5), write the serving bundle, log and register in MLflow."""
    from smartreco.models.registry import PEERS
    from smartreco.training import train_all

    names = list(PEERS) if peers.strip() == "all" else [p.strip() for p in peers.split(",") if p.strip()]
    if "mostpop" not in names:
        names.append("mostpop")  # the promotion floor is always measured
    summary = train_all(source, out_dir, models=tuple(["hybrid", *names]), encoder=encoder, track=not no_mlflow,
                        echo=click.echo)
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    click.echo(f"bundle:   {summary['bundle']}")
    for name, m in summary.get("metrics", {}).items():
        click.echo(f"{name:10s} ndcg@10={m['ndcg@10']:.4f} recall@10={m['recall@10']:.4f}")
    vs = summary.get("comparisons", {}).get("by_model", {}).get("hybrid", {}).get("vs_best_peer")
    if vs:
        click.echo(f"hybrid vs {vs.get('reference')}: {json.dumps({k: v for k, v in vs.items() if k != 'reference'})}")
    for name, reg in (summary.get("mlflow") or {}).get("registered", {}).items():
        state = "champion + challenger" if reg["promote"] else "challenger"
        click.echo(f"mlflow:   {name} v{reg['version']} -> {state} ({'; '.join(reg['reasons'])})")
