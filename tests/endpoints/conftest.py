import pytest

from tests.panel_review.helpers import eager_tasks  # noqa: F401  (fixture)


@pytest.fixture(autouse=True)
def _storage(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MODEL_ROOT = tmp_path / "models"
