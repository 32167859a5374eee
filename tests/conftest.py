import jax
import pytest

# Catch silent (B, 1) vs (B,) broadcasting bugs everywhere in the suite.
jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long learning tests (run with -m slow)")


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)
