"""imaging/ingest/rows.py: an import's rows in one statement on PostgreSQL, bulk_create elsewhere; the same rows."""

import pytest
from django.db import DataError, IntegrityError, connection, transaction

from imaging.ingest import rows as rows_module
from imaging.ingest.rows import insert_rows
from imaging.models import Instance, Series, Study, UidMapping
from tests.imaging.helpers import phantom_patient

FIELDS = ("series_id", "sop_instance_uid", "sop_class_uid", "slice_index", "file", "sha256", "suv_factor")


def _series(patient) -> Series:
    study = Study.objects.create(patient=patient, study_instance_uid="2.25.1", source="upload")
    return Series.objects.create(
        study=study, series_instance_uid="2.25.2", modality="PT", rows=2, columns=2, slices=3, spacing=[1, 1, 1],
        affine=[[1, 0, 0, 0]] * 4, manifest_sha256="0" * 64,
    )  # fmt: skip


def _columns(series, uids=("2.25.10", "2.25.11", "2.25.12")) -> dict:
    return {
        "series": [series.pk] * len(uids),
        "sop_instance_uid": list(uids),
        "sop_class_uid": ["1.2.840.10008.5.1.4.1.1.128"] * len(uids),
        "slice_index": list(range(len(uids))),
        "file": [f"dicom/P/{uid}.dcm" for uid in uids],
        "sha256": [f"{index:064x}" for index in range(len(uids))],
        "suv_factor": [0.5, None, 1.25][: len(uids)],
    }


def _stored():
    return sorted(Instance.objects.values_list(*FIELDS))


@pytest.mark.django_db
@pytest.mark.parametrize("vendor", ["postgresql", "other"])
def test_the_rows_are_those_bulk_create_stores(world, monkeypatch, vendor):
    assert connection.vendor == "postgresql"  # the suite's database; "other" takes the bulk_create branch
    series = _series(phantom_patient(world))
    columns = _columns(series)
    Instance.objects.bulk_create(
        Instance(**{name: values[index] for name, values in columns.items() if name != "series"}, series=series)
        for index in range(3)
    )
    expected = _stored()
    Instance.objects.all().delete()
    if vendor == "other":
        monkeypatch.setattr(rows_module.connection, "vendor", "sqlite")
    insert_rows(Instance, columns)
    assert _stored() == expected and expected[0][-1] == 0.5 and expected[1][-1] is None


@pytest.mark.django_db
def test_conflicts_are_skipped_only_when_asked_and_otherwise_refused_whole(world):
    patient = phantom_patient(world)
    insert_rows(UidMapping, {"patient": [patient.pk], "pseudonymous_uid": ["2.25.7"], "original_uid": ["1.2.3"]})
    insert_rows(UidMapping, {"patient": [patient.pk] * 2, "pseudonymous_uid": ["2.25.7", "2.25.8"],
                             "original_uid": ["1.2.3", "1.2.4"]}, ignore_conflicts=True)  # fmt: skip
    assert sorted(UidMapping.objects.values_list("pseudonymous_uid", flat=True)) == ["2.25.7", "2.25.8"]
    series = _series(patient)
    insert_rows(Instance, _columns(series, uids=("2.25.20",)))
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(Instance, _columns(series, uids=("2.25.21", "2.25.20")))  # the second is stored already
    assert list(Instance.objects.values_list("sop_instance_uid", flat=True)) == ["2.25.20"]


@pytest.mark.django_db
def test_a_value_longer_than_its_column_is_refused_not_cut(world):
    patient = phantom_patient(world)
    with pytest.raises(DataError), transaction.atomic():
        insert_rows(UidMapping, {"patient": [patient.pk], "pseudonymous_uid": ["2.25.9"], "original_uid": ["1." * 40]})
    assert not UidMapping.objects.exists()


def test_every_field_must_be_given_in_lists_of_one_length():
    with pytest.raises(ValueError, match=r"UidMapping: give exactly \['original_uid', 'patient', 'pseudonymous_uid'\]"):
        insert_rows(UidMapping, {"patient": [1], "pseudonymous_uid": ["2.25.1"]})
    with pytest.raises(ValueError, match="differ in length"):
        insert_rows(UidMapping, {"patient": [1], "pseudonymous_uid": ["2.25.1", "2.25.2"], "original_uid": ["1"]})


@pytest.mark.django_db
def test_nothing_to_insert_sends_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        insert_rows(UidMapping, {"patient": [], "pseudonymous_uid": [], "original_uid": []})
