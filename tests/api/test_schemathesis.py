"""The API fuzzed from its own OpenAPI schema (schemathesis, issue 12 section 3): the real engine
and its API on a free loopback port, every operation called as a viewer, a trader and an admin
with generated valid and invalid requests (examples, boundary values, random data). No answer
may be a server error, and every answer must be what the schema documents: its status, content
type, headers and body (and a method a path lacks is 405 with ``Allow``).

The default run takes a few generated examples per operation (a fixed seed: the same requests
every run); the soak run takes many more, and the coverage phase's boundary values of every
parameter too. Each role's run is a process of its own (schemathesis is CPU-bound: in the
engine's process it would share the interpreter lock with the server it tests), the three at
once. ``POST /auth/logout`` is left out: it ends the very session the run calls with
(tests/api/test_auth.py covers it).
"""

from pathlib import Path
from typing import Any

import anyio
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events

from ._auth import ADMIN, login, register, running_api, user_with_role

pytestmark = pytest.mark.anyio

DEFAULT_EXAMPLES = 15
SOAK_EXAMPLES = 100
#: Every check schemathesis has that judges one answer against the schema.
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance",
          "missing_required_header", "unsupported_method", "allow_header_conformance",
          "negative_data_rejection", "ignored_auth")


def fuzz(base: str, token: str, examples: int, coverage: bool) -> list[str]:
    """One schemathesis run against ``base`` with ``token``: the failures it found."""
    config = SchemathesisConfig.from_dict({
        "base-url": base,
        "headers": {"Authorization": f"Bearer {token}"},
        "seed": 12,
        "workers": 1,
        "request-timeout": 10,
        "generation": {"mode": "all", "max-examples": examples, "database": "none"},
        "phases": {"stateful": {"enabled": False}, "coverage": {"enabled": coverage}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
    })
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json", config=config)
    schema = schema.exclude(method="POST", path="/api/v1/auth/logout")
    found: list[str] = []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            found += _failures(event.recorder)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            found.append(f"error: {event.info.format() if hasattr(event, 'info') else event}")
    return found


def _failures(recorder: Any) -> list[str]:
    out = []
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.status is Status.FAILURE and check.failure_info is not None:
                case = recorder.cases[case_id].value
                failure = check.failure_info.failure
                out.append(f"{recorder.label} [{check.name}] {failure.title}: "
                           f"{failure.message[:300]} <- {case.method} {case.formatted_path} "
                           f"query={case.query} body={str(case.body)[:200]}")
    return out


async def _run(tmp_path: Path, examples: int, coverage: bool, **sections: Any) -> None:
    async with running_api(tmp_path, api={"max_concurrent_requests": 64}, **sections) as api:
        await register(api, "vera")
        viewer = (await login(api, "vera"))["access_token"]
        _, trader = await user_with_role(api, "tom", "trader")
        admin = (await login(api, *ADMIN))["access_token"]
        found: dict[str, list[str]] = {}

        async def run(role: str, token: str) -> None:
            found[role] = await anyio.to_process.run_sync(fuzz, api.base, token, examples,
                                                          coverage, cancellable=True)

        async with anyio.create_task_group() as tg:
            for role, token in (("viewer", viewer), ("trader", trader), ("admin", admin)):
                tg.start_soon(run, role, token)
        assert found == {"viewer": [], "trader": [], "admin": []}


async def test_the_api_answers_as_its_schema_says_for_every_role(tmp_path: Path) -> None:
    await _run(tmp_path, DEFAULT_EXAMPLES, coverage=False)


@pytest.mark.soak
@pytest.mark.timeout(600)  # minutes of fuzzing (beside the memory soak in .ci/run's soak step)
async def test_the_api_answers_as_its_schema_says_at_length(tmp_path: Path,
                                                            migrated_url: str) -> None:
    """On SQLite and on PostgreSQL."""
    await _run(tmp_path, SOAK_EXAMPLES, coverage=True, database={"url": migrated_url})
