"""Every catalogued mistake prints its one line, and docs/errors.md shows exactly those lines."""

import copy

import pytest
from hydra.core.singleton import Singleton

from error_catalogue import CASES, markdown, message
from vae.config import PROJECT_ROOT


# One worker builds the module-scoped fixture below once; under pytest-xdist (--dist loadgroup)
# the module's tests would otherwise be spread over the workers, each building it again.
pytestmark = pytest.mark.xdist_group("test_error_catalogue")

@pytest.fixture(scope="module")
def messages(tmp_path_factory, data_dir):
    # Module-scoped, so it runs outside the per-test restore of Hydra's global state: restore here.
    state = copy.deepcopy(Singleton.get_state())
    try:
        return {case.name: message(case, tmp_path_factory.mktemp("case"), data_dir) for case in CASES}
    finally:
        Singleton.set_state(state)


def test_the_catalogue_has_at_least_25_cases():
    assert len(CASES) >= 25 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_mistake_prints_one_line_naming_the_problem(case, messages):
    line = messages[case.name]
    assert case.expected in line and "\n" not in line


def test_docs_table_shows_the_exact_messages(messages):
    assert (PROJECT_ROOT / "docs" / "errors.md").read_text() == markdown(messages)
