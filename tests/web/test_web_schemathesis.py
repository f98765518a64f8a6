"""Schemathesis against /api/v1/openapi.json: generated requests, bounded, and never a 5xx.

Every response must also match the document (status codes, content types,
JSON bodies). The run is bounded: a few valid and a few invalid examples per
operation, no shrinking, no example database.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from tests.web.conftest import login, make_app, new_address

EXAMPLES = 10
#: An invalid request is rejected with one of these: schemathesis's list, and 413 for a body over the upload
#: limit (a generated list of events past its maxItems can be: seen in a run of the whole suite, though not
#: when this file ran alone).
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]


def test_the_api_conforms_to_its_openapi_document(exam_day) -> None:
    app = make_app(exam_day.instance)
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = new_address()
    assert login(client, "admin").status_code == 302
    # Logged in as the institute, so that generated requests reach past authentication.
    session = {"custody_session": client.get_cookie("custody_session").value}
    config = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": REJECTED}}})
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    checked = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def check(case) -> None:
                if mode is GenerationMode.POSITIVE:  # noqa: B023 (check runs within this iteration)
                    # Valid requests go in with the session; invalid ones keep their made-up credentials.
                    case.headers = {k: v for k, v in (case.headers or {}).items()
                                    if not k.lower().startswith("x-custody")}
                    case.cookies = dict(session)
                case.call_and_validate()

            try:
                check()
            except Unsatisfiable:
                # An operation without parameters or body has no invalid request to make.
                assert mode is GenerationMode.NEGATIVE, operation.label
                continue
            checked.append(f"{operation.label} {mode.value}")
    assert len(checked) > len(operations)
    # Known ids, so that the full 200 responses are validated against the document too.
    for path, parameters, query in (("/api/v1/items/{item_id}", {"item_id": "YW-C-K001-01"}, None),
                                    ("/api/v1/stations/{code}/expected", {"code": "ST-K001"}, {"action": "open"}),
                                    ("/api/v1/stations/{code}/expected", {"code": "ST-3601-PJ"}, None)):
        case = schema[path]["GET"].Case(path_parameters=parameters, query=query, cookies=dict(session))
        assert case.call_and_validate().status_code == 200
