"""Model registry: registration checks and copies the files, loads verify sha256, activation is audited."""

import shutil

import pytest
from django.core.management import CommandError, call_command

from inference.backends import ModelFileError
from inference.models import ModelVersion
from inference.predict import DEMO_MODEL_DIR, sha256_of
from inference.registry import activate, active_model, load, model_folder, register, resolve
from trial.models import AuditEntry
from trial.services.errors import Conflict, InvalidInput, NotAllowed, NotFound

from .conftest import register_demo

pytestmark = pytest.mark.django_db


def test_registration_copies_files_and_records_the_card(world):
    model = register_demo(world)
    card_sha = (DEMO_MODEL_DIR / "model_card.json").read_text()
    assert model.input_channels == ["CT", "PET_SUV"]
    assert model.labels == ["background", "GTV"]
    assert model.target_spacing_mm == [3.0, 2.0, 2.0]
    assert "NOT FOR CLINICAL USE" in model.intended_use
    assert model.validation["mean_dice"] >= 0.80
    copy = model_folder(model) / "gtv_unet.pt"
    assert copy.is_file() and sha256_of(copy) == model.sha256 == sha256_of(DEMO_MODEL_DIR / "gtv_unet.pt")
    assert "weights_sha256" in card_sha
    entry = AuditEntry.objects.filter(model="inference.modelversion", object_pk=str(model.pk)).get()
    assert entry.actor_username == "dm" and entry.reveals_allocation is False
    active = AuditEntry.objects.filter(model="inference.activemodel").get()
    assert active.reason == "tests use the demo model"
    assert active_model(world.trial) == model


def test_a_changed_weight_file_is_refused_at_load(world):
    model = register_demo(world)
    weights = model_folder(model) / "gtv_unet.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"gtv_unet\.pt"):
        load(model)


def test_bad_registrations_name_the_problem_and_store_nothing(world, tmp_path, settings):
    register_demo(world)
    with pytest.raises(Conflict, match="registered already"):
        register(folder=DEMO_MODEL_DIR, backend="torchscript", name="demo-gtv", version="1.0")
    with pytest.raises(InvalidInput, match="Unknown backend"):
        register(folder=DEMO_MODEL_DIR, backend="onnx", name="x", version="1")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput, match=r"model_card\.json"):
        register(folder=empty, backend="torchscript", name="x", version="1")
    broken = tmp_path / "broken"
    shutil.copytree(DEMO_MODEL_DIR, broken)
    (broken / "gtv_unet.pt").write_bytes(b"not the weights")
    with pytest.raises(InvalidInput, match="sha256"):
        register(folder=broken, backend="torchscript", name="x", version="1")
    assert ModelVersion.objects.count() == 1
    assert sorted(p.name for p in settings.MODEL_ROOT.iterdir() if not p.name.startswith(".")) == ["demo-gtv"]


def test_resolve_by_name_and_version(world):
    first = register_demo(world, "1.0")
    second = register_demo(world, "1.1", active=False)
    assert resolve("demo-gtv") == second
    assert resolve("demo-gtv:1.0") == first
    with pytest.raises(NotFound, match=r"demo-gtv:1\.0"):
        resolve("other")


def test_only_data_managers_activate_and_with_a_reason(world):
    model = register_demo(world, active=False)
    with pytest.raises(NotAllowed):
        activate(trial=world.trial, model=model, actor=world.coordinator, reason="x")
    with pytest.raises(InvalidInput, match="reason"):
        activate(trial=world.trial, model=model, actor=world.data_manager, reason=" ")
    assert active_model(world.trial) is None


def test_register_model_command(world, capsys):
    call_command("register_model", str(DEMO_MODEL_DIR), backend="torchscript", name="cmd-model", version="2",
                 activate_for=world.trial.protocol_id, reason="command test", by="dm")  # fmt: skip
    out = capsys.readouterr().out
    model = ModelVersion.objects.get(name="cmd-model")
    assert model.sha256 in out and active_model(world.trial) == model
    call_command("register_model", str(DEMO_MODEL_DIR), backend="torchscript", name="cmd-model", version="2",
                 exist_ok=True)  # fmt: skip
    assert ModelVersion.objects.filter(name="cmd-model").count() == 1
    with pytest.raises(CommandError, match="registered already"):
        call_command("register_model", str(DEMO_MODEL_DIR), backend="torchscript", name="cmd-model", version="2")


def test_model_registry_in_the_admin_for_data_managers_only(world, client):
    model = register_demo(world)
    world.data_manager.is_staff = True
    world.data_manager.save()
    world.coordinator.is_staff = True
    world.coordinator.save()
    client.force_login(world.data_manager)
    page = client.get(f"/admin/inference/modelversion/{model.pk}/change/")
    assert page.status_code == 200 and model.sha256[:16] in page.content.decode()
    assert client.get("/inference/models/").status_code == 200
    client.force_login(world.coordinator)
    assert client.get(f"/admin/inference/modelversion/{model.pk}/change/").status_code in (302, 403)
    assert client.get("/inference/models/").status_code == 403
    assert world.client(world.coordinator).get("/api/v1/inference/models/").status_code == 403
    assert world.client(world.data_manager).get("/api/v1/inference/models/").json()["results"][0]["sha256"] == (
        model.sha256
    )
