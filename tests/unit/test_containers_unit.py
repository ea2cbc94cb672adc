"""Image build plumbing without an engine: pins from pyproject, inputs hashing, Dockerfile contracts,
pip settings forwarded into the wheelhouse container, and the `container` marker's skip/fail rule."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from smartreco.containers import base, build, project, requirements, wheelhouse
from smartreco.containers.engine import EngineError
from smartreco.containers.spec import IMAGES

pytestmark = [pytest.mark.unit]
pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


def test_requirements_are_the_pyproject_extras_plus_core_deps():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in IMAGES.values():
        lines = requirements.requirement_lines(ROOT, spec.extra)
        assert lines == meta["dependencies"] + meta["optional-dependencies"][spec.extra]
    with pytest.raises(Exception, match="no extra 'nope'"):
        requirements.requirement_lines(ROOT, "nope")


def test_tags_come_from_smartreco_images():
    from smartreco import images

    assert IMAGES["pipeline"].tag == images.PIPELINE_IMAGE
    assert IMAGES["serving"].tag == images.SERVING_IMAGE


def _mini_project(tmp: Path) -> Path:
    root = tmp / "proj"
    (root / "smartreco").mkdir(parents=True)
    (root / "smartreco" / "__init__.py").write_text("x = 1\n")
    (root / "tests").mkdir()
    (root / "tests" / "__init__.py").write_text("")
    (root / "README.md").write_text("readme\n")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "mini"\nversion = "0.1"\nreadme = "README.md"\n'
        '[tool.setuptools.packages.find]\ninclude = ["smartreco*"]\n')
    return root


def test_source_hash_follows_package_files_only(tmp_path):
    root = _mini_project(tmp_path)
    assert [p.name for p in project.project_sources(root)] == ["pyproject.toml", "README.md", "smartreco"]
    h0 = project.source_hash(root)
    (root / "tests" / "test_x.py").write_text("changed\n")          # not in the image
    (root / "smartreco" / "__pycache__").mkdir()
    (root / "smartreco" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert project.source_hash(root) == h0
    (root / "smartreco" / "__init__.py").write_text("x = 2\n")      # in the image
    assert project.source_hash(root) != h0


def test_project_wheel_is_rebuilt_only_when_sources_change(tmp_path):
    root = _mini_project(tmp_path)
    out = tmp_path / "wheel"
    key = project.build_project_wheel(root, out)
    wheel = next(out.glob("*.whl"))
    mtime = wheel.stat().st_mtime_ns
    assert project.build_project_wheel(root, out) == key and wheel.stat().st_mtime_ns == mtime
    (root / "smartreco" / "new.py").write_text("y = 1\n")
    assert project.build_project_wheel(root, out) != key
    assert not (root / "build").exists()  # built from a clean copy, nothing left in the tree


def test_tests_helpers_stay_out_of_the_wheel_and_its_hash(tmp_path):
    import zipfile

    root = _mini_project(tmp_path)
    (root / "pyproject.toml").write_text(
        (root / "pyproject.toml").read_text() + 'exclude = ["smartreco.testing", "smartreco.testing.*"]\n'
    )
    (root / "smartreco" / "testing").mkdir()
    (root / "smartreco" / "testing" / "__init__.py").write_text("fake = 1\n")
    h0 = project.source_hash(root)
    (root / "smartreco" / "testing" / "__init__.py").write_text("fake = 2\n")  # not in the image: same hash
    assert project.source_hash(root) == h0
    project.build_project_wheel(root, tmp_path / "wheel")
    names = zipfile.ZipFile(next((tmp_path / "wheel").glob("*.whl"))).namelist()
    assert "smartreco/__init__.py" in names and not [n for n in names if n.startswith("smartreco/testing")]
    # the project's own pyproject keeps smartreco.testing (test fakes, tests' helpers) out of its images
    assert "smartreco.testing" in project.excluded_packages(ROOT)


def test_the_wheel_carries_its_source_hash_for_mlflow_run_tags(tmp_path):
    import zipfile

    from smartreco import provenance

    root = _mini_project(tmp_path)
    (root / "pyproject.toml").write_text((root / "pyproject.toml").read_text().replace(
        "[tool.setuptools.packages.find]", f'[tool.setuptools.package-data]\nsmartreco = ["{provenance.SOURCE_FILE}"]\n'
        "[tool.setuptools.packages.find]"))
    key = project.build_project_wheel(root, tmp_path / "wheel")
    zipfile.ZipFile(next((tmp_path / "wheel").glob("*.whl"))).extractall(tmp_path / "installed")
    package = tmp_path / "installed" / "smartreco"
    assert provenance.packaged_source_hash(package) == key == project.source_hash(root)
    assert provenance.run_tags(package)[provenance.SOURCE_HASH_TAG] == key
    assert not (root / "smartreco" / provenance.SOURCE_FILE).exists()  # written in the build's copy only
    # a source tree that is no git checkout: the version alone
    assert provenance.run_tags(root / "smartreco") == {provenance.VERSION_TAG: provenance.__version__}
    # the project's own wheel ships the file (package data), and its source tree never holds one
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert provenance.SOURCE_FILE in meta["tool"]["setuptools"]["package-data"]["smartreco"]
    assert not (ROOT / "smartreco" / provenance.SOURCE_FILE).exists()


def test_inputs_hash_changes_with_every_input(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "image_inspect", lambda ref: {"Id": f"sha256:{ref}"})
    root = tmp_path
    (root / "components").mkdir()
    (root / "components" / "Dockerfile").write_text("FROM x\n")
    (root / ".dockerignore").write_text("*\n")
    spec = IMAGES["pipeline"]
    args = dict(base_ref="b", wheel_key="w", project_key="p", version="1")
    h0 = build.inputs_hash(root, spec, **args)
    assert build.inputs_hash(root, spec, **args) == h0
    for key in args:
        assert build.inputs_hash(root, spec, **{**args, key: args[key] + "!"}) != h0, key
    (root / "components" / "Dockerfile").write_text("FROM y\n")
    assert build.inputs_hash(root, spec, **args) != h0


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_dockerfile_contract(name):
    spec = IMAGES[name]
    text = (ROOT / spec.dockerfile).read_text()
    assert re.search(rf"^ARG BASE_IMAGE=python:{re.escape(spec.python)}-slim$", text, re.M)
    for label in ("source", "version", "licenses", "revision", "title"):
        assert f"org.opencontainers.image.{label}=" in text
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in src.split():
            assert path.startswith(f"build/images/{name}/"), path  # only what the build stages
    assert "--no-index" in text  # only the served wheelhouse, no index inside the build
    last_copy = max(m.start() for m in re.finditer(r"^COPY ", text, re.M))
    assert "/project/" in text[last_copy:].splitlines()[0], "the project is the last layer"


def test_serving_dockerfile_runs_non_root_with_seldon_ports_and_busl_notice():
    text = (ROOT / "inference_graph/Dockerfile").read_text()
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and not user[-1].startswith(("0", "root"))
    assert "HOME=/home/smartreco" in text
    assert re.search(r"^EXPOSE 9000 9500 6000$", text, re.M)
    assert "BUSL-1.1" in text and "1.18" in text
    assert "seldon-core-microservice \"$MODEL_NAME\"" in text
    pipeline = (ROOT / "components/Dockerfile").read_text()
    assert "HF_HUB_OFFLINE=1" in pipeline


def test_dockerignore_is_a_whitelist_of_the_staged_folder():
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*" and "!build/images/" in lines


def test_local_pip_settings_are_mounted_read_only(tmp_path):
    simple = tmp_path / "pypi" / "simple"
    simple.mkdir(parents=True)
    links = tmp_path / "wheels"
    links.mkdir()
    settings = {"PIP_EXTRA_INDEX_URL": f"file://{simple} https://example.org/simple",
                "PIP_FIND_LINKS": str(links)}
    mounts = wheelhouse._local_mounts(settings)
    assert f"{tmp_path / 'pypi'}:{tmp_path / 'pypi'}:ro" in mounts   # the index's parent (../files)
    assert f"{links}:{links}:ro" in mounts
    assert not any("example.org" in m for m in mounts)


def test_cuda_wheels_are_refused(tmp_path):
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    wheelhouse._check_cpu_only(tmp_path)
    (tmp_path / "nvidia_cublas_cu12-12.8-py3-none-manylinux_2_27_x86_64.whl").write_bytes(b"")
    with pytest.raises(EngineError, match="CUDA"):
        wheelhouse._check_cpu_only(tmp_path)


def test_debian_mirror_comes_from_apt_or_env(monkeypatch):
    monkeypatch.setenv("SMARTRECO_DEBIAN_MIRROR", "http://mirror.example/debian")
    assert base.debian_mirror() == "http://mirror.example/debian"
    monkeypatch.delenv("SMARTRECO_DEBIAN_MIRROR")
    assert base.debian_mirror().rstrip("/").endswith("/debian")


def test_unknown_base_mode_is_a_clear_error():
    with pytest.raises(EngineError, match="--base must be official or debian"):
        base.resolve_base(IMAGES["pipeline"], "alpine", ROOT, print)


def test_cli_lists_images_build():
    from smartreco.cli import _register, cli

    _register()
    result = CliRunner().invoke(cli, ["images", "build", "--help"])
    assert result.exit_code == 0 and "--base [official|debian]" in result.output


_CONTAINER_TEST = """
import pytest
pytestmark = [pytest.mark.container]
def test_needs_engine():
    pass
"""


# in CI the skip turns into a failure of the setup phase, which pytest reports as an error (exit code 1)
@pytest.mark.parametrize(("ci", "outcome"), [("", {"skipped": 1}), ("true", {"errors": 1})])
def test_container_marker_skips_without_engine_and_fails_in_ci(pytester, monkeypatch, ci, outcome):
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    container: needs a Docker engine\n")
    pytester.makepyfile(test_c=_CONTAINER_TEST)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("CI", ci)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(**outcome)
    want = "*CI=true: container test skipped*" if ci else "*no Docker engine answers*"
    result.stdout.fnmatch_lines([want])
    assert result.ret != 0 if ci else result.ret == 0


def test_host_python_lookup_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    with pytest.raises(EngineError, match="pyenv install 3.12"):
        base.host_python("3.12")


def test_wheels_reach_the_build_over_loopback_never_as_context_or_layer():
    """Single stage, no COPY of the wheelhouse, the wheelhouse kept out of the context: the build needs about
    the image's size in free disk (a copied wheelhouse plus a deps stage needed ~3x and filled CI's disk)."""
    for dockerfile in ("components/Dockerfile", "inference_graph/Dockerfile"):
        text = (ROOT / dockerfile).read_text()
        assert len(re.findall(r"^FROM ", text, re.M)) == 1, dockerfile
        assert "COPY --from" not in text and "/wheels/" not in text, dockerfile
        assert '--find-links "$WHEELHOUSE_URL"' in text and "wheels.sha256" in text, dockerfile
    assert "build/images/*/wheels/" in (ROOT / ".dockerignore").read_text().splitlines()


def test_wheel_server_serves_the_folder_and_stops(tmp_path):
    import urllib.request

    from smartreco.containers.wheel_server import serve_wheels

    (tmp_path / "a-1.0-py3-none-any.whl").write_bytes(b"wheel bytes")
    with serve_wheels(tmp_path, port=0) as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=5) as listing:
            assert "a-1.0-py3-none-any.whl" in listing.read().decode()  # pip's --find-links reads these links
        with urllib.request.urlopen(url + "a-1.0-py3-none-any.whl", timeout=5) as wheel:
            assert wheel.read() == b"wheel bytes"
    try:
        urllib.request.urlopen(url, timeout=2)
    except OSError:
        pass
    else:
        raise AssertionError("the wheel server still answers after its block")


def test_wheel_index_changes_with_any_wheel(tmp_path):
    from smartreco.containers.wheel_server import write_wheel_index

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "a-1.0-py3-none-any.whl").write_bytes(b"one")
    first = write_wheel_index(wheels, tmp_path / "wheels.sha256")
    assert "a-1.0-py3-none-any.whl" in (tmp_path / "wheels.sha256").read_text()
    (wheels / "a-1.0-py3-none-any.whl").write_bytes(b"two")
    assert write_wheel_index(wheels, tmp_path / "wheels.sha256") != first


def test_a_build_without_the_disk_it_needs_is_refused_naming_both_sizes(monkeypatch):
    from smartreco.containers import engine

    monkeypatch.setattr(engine, "engine_free_disk_gb", lambda: 1.5)
    with pytest.raises(engine.EngineError, match=r"needs about 4\.0 GB free .* 1\.5 GB is free"):
        engine.require_build_disk("docker build smartreco-pipeline:0.1.0", IMAGES["pipeline"].build_disk_gb)
    monkeypatch.setattr(engine, "engine_free_disk_gb", lambda: None)  # a remote engine: nothing to check here
    engine.require_build_disk("docker build x", 4.0)
