"""KFP component: the hybrid ranker on ALL data (retrievers on the earlier window, LightGBM lambdarank
on the later one, retrievers refitted), written as the verified serving bundle."""

from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from components.common import component


@component()
def train_hybrid(dataset: Input[Dataset], cb_vectors: Input[Model], cf_model: Input[Model], bundle: Output[Model],
                 metrics: Output[Metrics], summary: Output[Markdown]) -> str:
    """Returns the bundle's ``created`` stamp (its version). ``cf_model`` (train_cf: Lightning MF + ONNX
    scorer) is the bundle's CF; ``cb_vectors`` (train_cb) its content vectors."""
    import json
    from pathlib import Path

    from smartreco.data.io import load_folder
    from smartreco.training import train_hybrid as fit

    out = fit(load_folder(Path(dataset.path)), bundle.path, cb_dir=cb_vectors.path, cf_dir=cf_model.path,
              progress=False)
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    for key, value in manifest.get("fit_info", {}).items():
        if isinstance(value, (int, float)) and value == value:
            metrics.log_metric(f"hybrid_{key.replace('@', '_at_')}", float(value))
    served = manifest.get("served", {})
    bundle.metadata.update({"kind": "hybrid", "created": manifest["created"], "n_items": manifest["n_items"],
                            "cf_backend": manifest["params"].get("cf_backend"),
                            "content": manifest["params"].get("content")})
    lines = [f"- **{k}**: {v}" for k, v in manifest.get("fit_info", {}).items()]
    Path(summary.path).write_text(
        "# Hybrid bundle\n\n" + f"- created: {manifest['created']}\n- items: {manifest['n_items']}, users: "
        f"{manifest['n_users']}\n- CF: {served.get('cf')}\n- content: {served.get('cb')}\n"
        f"- features: {', '.join(manifest['feature_names'])}\n" + "\n".join(lines) + "\n")
    return str(manifest["created"])
