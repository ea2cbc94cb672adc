"""`smartreco.rehearse.steps.step_args`: a pipeline step inside a rehearsal runs as a step pod would (the pods' user,
no capabilities, on the rehearsal's network, the object-store volume where the pods mount it), carries the
rehearsal's label (so `down` removes it), and no Secret value appears in its command line."""

from smartreco.rehearse import patches, steps
from smartreco.rehearse.docker_args import LABEL


def _flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


def test_step_runs_as_a_step_pod_with_the_label_and_no_secret_values() -> None:
    args = steps.step_args(
        "h-test", "register", ["python", "-c", "print(1)", "/x"], ["REDIS_PASSWORD", "MLFLOW_TRACKING_URI"], "img:1"
    )
    assert args[:3] == ["run", "--name", steps.step_container("h-test", "register")]
    assert _flag_values(args, "--network") == ["h-test"]
    assert f"{LABEL}=h-test" in _flag_values(args, "--label")
    assert _flag_values(args, "--user") == [f"{steps.STEP_UID}:{steps.STEP_UID}"]
    assert _flag_values(args, "--cap-drop") == ["ALL"]
    assert _flag_values(args, "--security-opt") == ["no-new-privileges"]
    assert _flag_values(args, "--mount") == [
        f"type=volume,source=h-test-pvc-{patches.OBJECT_STORE_CLAIM},target={patches.OBJECT_STORE_MOUNT}"
    ]
    # environment by name only: docker takes each value from its own environment
    assert _flag_values(args, "--env") == ["HOME", "MLFLOW_TRACKING_URI", "REDIS_PASSWORD"]
    assert not any("=" in v for v in _flag_values(args, "--env"))
    # the entrypoint is the argv's first word, the image comes before the rest
    i = args.index("--entrypoint")
    assert args[i + 1 :] == ["python", "img:1", "-c", "print(1)", "/x"]


def test_object_store_volume_is_the_claims_volume() -> None:
    assert steps.object_store_volume("r1") == f"r1-pvc-{patches.OBJECT_STORE_CLAIM}"
