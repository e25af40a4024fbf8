"""Images in S3-compatible object storage (a local moto S3 server), through the same pipeline and API."""

import socket

import boto3
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from imaging.export import planning_rtstruct
from imaging.models import Instance
from tests.imaging.helpers import phantom_patient, zip_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def s3(settings):
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="us-east-1")  # fmt: skip
    client.create_bucket(Bucket="contourtrial-images")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
            "bucket_name": "contourtrial-images", "endpoint_url": endpoint, "access_key": "test",
            "secret_key": "test", "region_name": "us-east-1", "default_acl": None, "file_overwrite": False}},
    }  # fmt: skip
    yield client
    server.stop()


def test_upload_serve_and_export_with_object_storage(world, small_phantom, s3, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    patient = phantom_patient(world)
    response = world.client(world.coordinator).post(
        "/api/v1/imaging/uploads/",
        {"patient": patient.pk, "files": [SimpleUploadedFile("s.zip", zip_of(small_phantom.ct_dir))]},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket="contourtrial-images")["Contents"]}
    assert {instance.file.name for instance in Instance.objects.all()} == keys and len(keys) == 40
    assert not (tmp_path / "media" / "dicom").exists(), "nothing went to the local filesystem"

    instance = Instance.objects.order_by("slice_index").first()
    served = world.client(world.physician).get(f"/api/v1/imaging/instances/{instance.pk}/dicom/")
    assert served.status_code == 200 and b"".join(served.streaming_content)[128:132] == b"DICM"

    from imaging.contours.maskio import read_mask
    from imaging.export import load_series_datasets
    from imaging.geometry import grid_from_datasets

    grid, _ = grid_from_datasets(load_series_datasets(instance.series))
    rtstruct = planning_rtstruct(actor=world.data_manager, patient=patient,
                                 mask=read_mask(small_phantom.gtv_nifti, grid))  # fmt: skip
    assert rtstruct.Modality == "RTSTRUCT"
