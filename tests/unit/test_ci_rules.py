"""The test run's own rules (tests/conftest.py): under CI=true no skip passes, at collection (a module-level
``pytest.importorskip``) or at run time; the two environments are split by reading each module's
``pytestmark`` statically, and a module that neither would collect stops the run. Each rule is run in an
inner pytest (pytester) with the project's conftest, with and without CI=true."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SplitError, module_markers, split_problems

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.unit]

ROOT = Path(__file__).resolve().parents[2]

_SKIPS_AT_IMPORT = """
import pytest
pytest.importorskip("smartreco_no_such_module")
pytestmark = [pytest.mark.unit]
def test_never_runs():
    pass
"""

_SKIPS_AT_RUN = """
import pytest
pytestmark = [pytest.mark.unit]
def test_needs_promtool():
    pytest.skip("promtool not found")
@pytest.mark.xfail(reason="known", strict=True)
def test_known_failure():
    assert False
"""


@pytest.fixture
def inner(pytester, monkeypatch):
    """An inner pytest run with the project's conftest; ``inner(ci, **modules)`` runs it."""
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    unit: u\n    serving: s\n")

    def run(ci: str, **modules: str) -> pytest.RunResult:
        pytester.makepyfile(**modules)
        monkeypatch.setenv("CI", ci)
        return pytester.runpytest("-rs", "-p", "no:cacheprovider")

    return run


_PASSES = "import pytest\npytestmark = [pytest.mark.unit]\ndef test_fine():\n    pass\n"


def test_module_that_skips_at_import_only_skips_outside_ci(inner):
    result = inner("", test_imports=_SKIPS_AT_IMPORT, test_fine=_PASSES)
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == 0


def test_module_that_skips_at_import_fails_the_run_under_ci(inner):
    result = inner("true", test_imports=_SKIPS_AT_IMPORT, test_fine=_PASSES)
    assert result.ret not in (0, 5)
    result.stdout.fnmatch_lines(["*CI=true: test_imports.py skipped at collection*smartreco_no_such_module*"])
    result.assert_outcomes(errors=1)


def test_skip_at_run_time_fails_under_ci_but_an_xfail_stays_an_xfail(inner):
    result = inner("true", test_runs=_SKIPS_AT_RUN)
    result.assert_outcomes(failed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*CI=true: test skipped (promtool not found); CI must run it*"])
    assert result.ret == 1


def test_module_collected_by_neither_environment_stops_the_run(inner):
    source = "import pytest\n\n@pytest.mark.serving\ndef test_x():\n    pass\n"
    result = inner("", test_misplaced=source)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*neither environment would collect*", "*test_misplaced.py:3: pytest.mark.serving*"])


@pytest.mark.parametrize(
    ("source", "marks"),
    [
        ("import pytest\npytestmark = [pytest.mark.serving, pytest.mark.integration]\n", {"serving", "integration"}),
        ("import pytest\npytestmark = pytest.mark.serving\n", {"serving"}),
        ("import pytest\npytestmark = (pytest.mark.unit, pytest.mark.timeout(60))\n", {"unit", "timeout"}),
        ("import pytest\npytestmark = [pytest.mark.unit]\npytestmark += [pytest.mark.serving]\n", {"unit", "serving"}),
        ("import pytest\npytestmark = [pytest.mark.unit]\npytestmark = [pytest.mark.container]\n", {"container"}),
        ("def test_plain():\n    pass\n", set()),
    ],
)
def test_module_markers_are_read_without_importing(source, marks):
    assert module_markers(source) == marks


@pytest.mark.parametrize(
    "source",
    [
        "import pytest\n@pytest.mark.serving\ndef test_x():\n    pass\n",  # serving on a function
        "import pytest\nMARKS = [pytest.mark.serving]\npytestmark = MARKS\n",  # not a literal
        "import pytest\npytestmark = [pytest.mark.serving]\npytestmark = [pytest.mark.unit]\n",  # overwritten
    ],
)
def test_a_serving_marker_the_split_cannot_see_is_an_error(source):
    with pytest.raises(SplitError):
        module_markers(source)


def test_misnamed_test_file_is_reported(tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "check_things.py").write_text("def test_something():\n    pass\n")
    (tests / "helpers.py").write_text("def make():\n    pass\n")
    (tests / "test_ok.py").write_text("import pytest\npytestmark = [pytest.mark.serving]\n")
    problems = split_problems(tests)
    assert len(problems) == 1 and "check_things.py" in problems[0] and "test_something" in problems[0]


def test_every_project_test_module_belongs_to_exactly_one_environment():
    assert split_problems() == []
