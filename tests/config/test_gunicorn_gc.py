"""A gunicorn worker freezes what lives as long as it does (config.gunicorn_conf, decision 0086).

A full garbage collection walks every object the collector tracks: in a worker that has loaded
the site, about 300,000, which stopped the worker for about 180 ms every few thousand requests
(the API's p99.9 at a constant rate, docs/performance.md). After ``gc.freeze()`` those objects
are out of the collector's sight and a full collection walks only what requests made since.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from gunicorn.app.base import Application  # type: ignore[import-untyped]  # no stubs

from config import gunicorn_conf


class Loaded(Application):
    """gunicorn's own reading of a --config module, with no command line and no application."""

    def load_config(self) -> None:
        pass

    def load(self) -> None:
        pass


@pytest.fixture
def unfrozen() -> Iterator[None]:
    # The test process shares its collector with every other test: leave it as found.
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_gunicorn_reads_the_hooks_from_the_dockerfiles_config_module() -> None:
    app = Loaded()
    app.load_config_from_module_name_or_filename("python:config.gunicorn_conf")

    assert app.cfg.post_worker_init is gunicorn_conf.post_worker_init
    assert app.cfg.post_request is gunicorn_conf.post_request
    assert app.cfg.logger_class is gunicorn_conf.RedactingLogger


def test_a_worker_that_loaded_the_site_hides_it_from_the_collector(unfrozen: None) -> None:
    # This process has loaded Django, the apps and the test suite: like a worker, and more.
    tracked = len(gc.get_objects())
    assert tracked > 100_000
    assert gc.get_freeze_count() == 0

    gunicorn_conf.post_worker_init(SimpleNamespace(nr=0))

    assert gc.get_freeze_count() >= tracked * 0.95
    # What a full collection still walks: what was created since, a sliver.
    assert len(gc.get_objects()) < tracked * 0.05


@pytest.mark.parametrize(("handled", "freezes"), [(1, True), (2, False), (100, True), (999, False)])
def test_a_worker_freezes_again_after_its_first_requests_only(
    unfrozen: None, handled: int, freezes: bool
) -> None:
    gunicorn_conf.post_request(SimpleNamespace(nr=handled), None, {}, None)

    assert (gc.get_freeze_count() > 0) is freezes
