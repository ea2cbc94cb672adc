"""KFP component: start the training pipeline (locally: run it; on a cluster: submit it)."""

from kfp.dsl import Artifact, Output

from components.common import component


@component()
def retrain(trigger: Output[Artifact], reason: str = "", mode: str = "auto", host: str = "",
            training_args: str = "{}", experiment: str = "smartreco") -> str:
    """``mode``: local (``smartreco pipeline run training --local``: kfp.local, subprocess runner, here),
    cluster (``smartreco pipeline submit training --host``: kfp.Client), auto (cluster when ``host`` or
    KFP_HOST is set, else local), record (write the trigger only). Returns the run folder or run URL.

    It shells out to the CLI in a fresh Python: inside a step KFP runs with ``_KFP_RUNTIME=true``, where
    ``kfp.dsl`` has no ``component`` and pipelines can be neither defined nor compiled."""
    import json
    import os
    import subprocess
    import sys
    from datetime import UTC, datetime
    from pathlib import Path

    from smartreco import settings

    args = json.loads(training_args or "{}")
    host = host or settings.KFP_HOST.get() or ""
    resolved = ("cluster" if host else "local") if mode == "auto" else mode
    if resolved not in ("local", "cluster", "record"):
        raise ValueError(f"mode: must be auto, local, cluster or record, got {mode!r}")
    record = {"reason": reason, "mode": resolved, "arguments": args,
              "triggered_at": datetime.now(UTC).isoformat(timespec="seconds")}
    params = [x for k, v in args.items() for x in ("--param", f"{k}={v if isinstance(v, str) else json.dumps(v)}")]
    cli = [sys.executable, "-m", "smartreco", "pipeline"]
    env = {k: v for k, v in os.environ.items() if k != "_KFP_RUNTIME"}
    if resolved == "local":
        cmd = [*cli, "run", "training", "--local", "--runner", "subprocess", "--json", *params]
    elif resolved == "cluster":
        cmd = [*cli, "submit", "training", "--host", host, "--experiment", experiment, *params]
    if resolved != "record":
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        sys.stderr.write(proc.stderr[-5000:])
        if proc.returncode != 0:
            raise RuntimeError(f"training pipeline {resolved} start failed (exit {proc.returncode})")
        out = proc.stdout.strip()
        record["run"] = json.loads(out)["run_dir"] if resolved == "local" else out.splitlines()[-1]
    Path(trigger.path).write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    return str(record.get("run", "recorded"))
