"""KFP component: render the SeldonDeployment with the new model, kubectl apply (cluster) or record (local)."""

from kfp.dsl import Artifact, Input, Markdown, Model, Output

from components.common import component


@component()
def deploy(
    bundle: Input[Model],
    gate: Input[Artifact],
    deployment: Output[Artifact],
    summary: Output[Markdown],
    model_version: str = "",
    target: str = "auto",
    namespace: str = "",
    arm: str = "champion",
) -> str:
    """Returns where it went (``cluster`` | ``rehearsal`` | ``local``). Side effects: never cache this step.

    On a cluster the nodes get the registry URIs from ``gate`` (``model_uris``: ``models:/name/version``); in the
    cluster rehearsal (``target="rehearsal"``: ``smartreco rehearse apply`` on the running rehearsal, see
    smartreco.deploy) their aliases; locally (or when there are none) every node of the arm gets the bundle folder
    itself (the rehearsal refuses that: its pods fetch from its MLflow)."""
    import json
    import shutil
    from pathlib import Path

    from smartreco.deploy import KINDS, cluster_configured
    from smartreco.deploy import deploy as run_deploy

    target_now = ("cluster" if cluster_configured() else "local") if target == "auto" else target
    uris = json.loads(Path(gate.path).read_text()).get("model_uris", {}) if Path(gate.path).is_file() else {}
    if target_now == "local" or (not uris and target_now != "rehearsal"):
        uris = {kind: str(Path(bundle.path).resolve()) for kind in KINDS}
    result = run_deploy(uris, version=model_version, target=target_now, arm=arm, namespace=namespace)
    out = Path(deployment.path)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(result.manifest, out / "seldondeployment.yaml")
    (out / "deploy.json").write_text(json.dumps(result.to_dict(), indent=2))
    Path(summary.path).write_text(result.to_markdown())
    print(result.to_markdown())
    return result.target
