"""DICOM C-STORE receiver (pynetdicom): spool each association's images, then file them on release.

C-ECHO is answered. Images are written to a spool folder as they arrive (fast, so the sender is not
held up) and filed by imaging.ingest.arrivals when the association is released or aborted.
"""

import logging
import shutil
import uuid
from pathlib import Path

from django.db import close_old_connections, connection
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    EnhancedPETImageStorage,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    Verification,
)

from imaging.ingest.arrivals import file_arrivals

log = logging.getLogger(__name__)
ACCEPTED_STORAGE = (CTImageStorage, PositronEmissionTomographyImageStorage, MRImageStorage)
REFUSED_WITH_REASON = (EnhancedCTImageStorage, EnhancedMRImageStorage, EnhancedPETImageStorage)


class Listener:
    def __init__(self, spool: Path, ae_title: str):
        self.spool = Path(spool)
        self.spool.mkdir(parents=True, exist_ok=True)
        self.ae = AE(ae_title=ae_title)
        self.ae.maximum_pdu_size = 0
        for sop_class in ACCEPTED_STORAGE:
            self.ae.add_supported_context(sop_class, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
        self.ae.add_supported_context(Verification)
        self.outcomes = []

    def _folder(self, assoc) -> Path:
        key = getattr(assoc, "_contourtrial_spool", None)
        if key is None:
            key = uuid.uuid4().hex
            assoc._contourtrial_spool = key
        folder = self.spool / key
        folder.mkdir(exist_ok=True)
        return folder

    def on_store(self, event) -> int:
        try:
            path = self._folder(event.assoc) / f"{uuid.uuid4().hex}.dcm"
            path.write_bytes(event.encoded_dataset())
        except Exception:
            log.exception("could not spool a received image")
            return 0xA700  # Out of resources
        return 0x0000

    def on_echo(self, event) -> int:
        return 0x0000

    def on_finish(self, event) -> None:
        key = getattr(event.assoc, "_contourtrial_spool", None)
        if key is None:
            return
        folder = self.spool / key
        close_old_connections()
        try:
            paths = sorted(folder.glob("*.dcm"))
            outcomes = file_arrivals(paths, source="dicom", calling_ae=event.assoc.requestor.ae_title)
            self.outcomes.extend(outcomes)
            for outcome in outcomes:
                log.info("%s: %d files: %s", event.assoc.requestor.ae_title, outcome.files, outcome.message)
        except Exception:
            log.exception("filing the images of an association failed; they stay in %s", folder)
            return
        finally:
            connection.close()
        shutil.rmtree(folder, ignore_errors=True)

    def handlers(self):
        return [
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_RELEASED, self.on_finish),
            (evt.EVT_ABORTED, self.on_finish),
        ]

    def serve(self, host: str, port: int, block: bool = True):
        return self.ae.start_server((host, port), block=block, evt_handlers=self.handlers())
