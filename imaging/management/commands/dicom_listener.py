"""Run the DICOM C-STORE receiver that PACS and scanners push planning studies to."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from imaging.listener import Listener


class Command(BaseCommand):
    help = "Receive DICOM images by C-STORE (answers C-ECHO); file them under the enrolled patient or quarantine."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=settings.DICOM_PORT)
        parser.add_argument("--ae-title", default=settings.DICOM_AE_TITLE)
        parser.add_argument("--bind", default="0.0.0.0", help="Address to listen on.")  # noqa: S104

    def handle(self, *args, port, ae_title, bind, **options):
        listener = Listener(Path(settings.MEDIA_ROOT) / "spool", ae_title)
        self.stdout.write(f"DICOM listener {ae_title} on {bind}:{port} (Ctrl-C stops)")
        listener.serve(bind, port, block=True)
