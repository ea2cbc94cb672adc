"""Schemathesis against the executor's OpenAPI document (generated from the request models): for
schema-valid and schema-violating bodies, 0 server errors, 0 answers that violate the document, and
every schema-violating request refused (negative-data check). Derandomized: the same cases each run."""

import pytest

pytest.importorskip("seldon_core")  # serving venv only
schemathesis = pytest.importorskip("schemathesis")

from graph_fake_bundle import GraphThread  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import negative_data_rejection, response_schema_conformance  # noqa: E402

from smartreco.serving.openapi import executor_openapi  # noqa: E402

pytestmark = [pytest.mark.serving, pytest.mark.integration]

EXAMPLES = 40  # per operation and mode; 600 ran clean when this test was written (150 each)
CHECKS = [not_a_server_error, response_schema_conformance, negative_data_rejection]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    g = GraphThread(tmp_path_factory.mktemp("fuzz"), in_process=True, cache="local")
    yield g
    g.stop()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("path", ["/api/v1.0/predictions", "/api/v1.0/feedback"])
def test_no_server_error_and_no_schema_violation(graph, path, mode):
    op = schemathesis.openapi.from_dict(executor_openapi())[path]["POST"]
    failures: list[str] = []
    statuses: dict[int, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case):
        response = case.call(base_url=graph.url, timeout=30)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS, transport_kwargs={"base_url": graph.url})
        except BaseException as exc:  # a FailureGroup: collect every case, report them together
            failures.append(f"{response.status_code} {case.body!r:.200}: {str(exc)[:600]}")

    run()
    assert not failures, f"{len(failures)} failing case(s):\n" + "\n".join(failures[:5])
    assert sum(statuses.values()) == EXAMPLES and not any(code >= 500 for code in statuses)
    if mode is GenerationMode.NEGATIVE:
        assert set(statuses) <= {400}, statuses
    elif path.endswith("predictions"):
        assert statuses.get(200, 0) > EXAMPLES // 2, statuses  # most valid requests are answered
