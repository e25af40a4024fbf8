"""Model backends behind one interface (base.Backend). Imported lazily: nnU-Net is heavy to import."""

from importlib import import_module

from .base import Backend, CaseImages, ModelFileError, Proposal, WeightFile

_CLASSES = {
    "torchscript": ("inference.backends.torchscript", "TorchScriptBackend"),
    "nnunetv2": ("inference.backends.nnunet", "NnUNetBackend"),
}
KINDS = tuple(_CLASSES)


def backend_class(kind: str) -> type[Backend]:
    if kind not in _CLASSES:
        raise ModelFileError(f"Unknown backend {kind!r}; choose one of {', '.join(KINDS)}.")
    module, name = _CLASSES[kind]
    return getattr(import_module(module), name)


__all__ = ["KINDS", "Backend", "CaseImages", "ModelFileError", "Proposal", "WeightFile", "backend_class"]
