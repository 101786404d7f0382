"""The S3 client's data files through ``s3_models.QuickLoader``: the same models, endpoints and
answers as botocore's own loader, and a client made with it that resolves and signs as one
made without it."""

from __future__ import annotations

from datetime import UTC, datetime

import botocore.auth
import botocore.session
import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import Loader, create_loader

from archiver.settings import StoreSettings
from archiver.store.s3 import make_client
from archiver.store.s3_models import QuickLoader, quick_loader


@pytest.mark.parametrize(("name", "type_name"), [
    ("s3", "service-2"), ("s3", "endpoint-rule-set-1"), ("s3", "paginators-1"),
    ("s3", "waiters-2"), ("sts", "service-2"),
])
def test_the_models_are_the_ones_botocore_loads(name: str, type_name: str) -> None:
    assert QuickLoader().load_service_model(name, type_name) == \
        Loader().load_service_model(name, type_name)


def test_the_endpoints_and_defaults_are_the_ones_botocore_loads() -> None:
    for data in ("endpoints", "partitions", "sdk-default-configuration"):
        assert QuickLoader().load_data(data) == Loader().load_data(data)


def test_known_services_answer_as_botocore_lists_them() -> None:
    quick, plain = QuickLoader(), Loader()
    listed = plain.list_available_services("service-2")
    assert "s3" in quick.list_available_services("service-2")
    assert "no-such-service" not in quick.list_available_services("service-2")
    assert "../s3" not in quick.list_available_services("service-2")
    assert list(quick.list_available_services("service-2")) == listed
    assert len(quick.list_available_services("service-2")) == len(listed)
    with pytest.raises(UnknownServiceError):
        QuickLoader().load_service_model("no-such-service", "service-2")


def test_the_search_path_is_the_one_create_loader_makes(tmp_path: object) -> None:
    path = f"{tmp_path}:~/models"
    assert quick_loader(path).search_paths == create_loader(path).search_paths
    assert quick_loader(None).search_paths == create_loader(None).search_paths


@pytest.mark.parametrize("settings", [
    StoreSettings(region="us-east-1"),
    StoreSettings(region="eu-west-3", addressing_style="path"),
    StoreSettings(region="cn-north-1"),
    StoreSettings(region="us-west-2", endpoint_url="http://127.0.0.1:9000",
                  addressing_style="path"),
])
def test_a_client_resolves_and_signs_as_one_botocore_makes(
        settings: StoreSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The URL, region and signed headers of a PUT, presigned at a fixed time, are the same
    with the quick loader as with botocore's."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda: datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None))
    quick = make_client(settings)
    original = botocore.session.Session.register_component

    def keep_data_loader(self: botocore.session.Session, name: str, component: object) -> None:
        if name != "data_loader":
            original(self, name, component)

    monkeypatch.setattr(botocore.session.Session, "register_component", keep_data_loader)
    plain = make_client(settings)
    try:
        assert isinstance(quick._loader, QuickLoader)
        assert not isinstance(plain._loader, QuickLoader)
        params = {"Bucket": "bucket", "Key": "media/ab/cd.jpg"}
        assert quick.generate_presigned_url("put_object", Params=params) == \
            plain.generate_presigned_url("put_object", Params=params)
        assert (quick.meta.endpoint_url, quick.meta.region_name) == \
            (plain.meta.endpoint_url, plain.meta.region_name)
    finally:
        quick.close()
        plain.close()
