"""The labelmap wire encoding arrives as a raw body; DRF needs a parser for it (its CSRF check parses)."""

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

LABELMAP_TYPE = "application/vnd.contourtrial.labelmap"


class LabelmapParser(BaseParser):
    """Hands the body over as bytes, refusing more than DATA_UPLOAD_MAX_MEMORY_SIZE."""

    media_type = LABELMAP_TYPE

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise ParseError(f"The contour is larger than the server accepts in one request ({limit // 2**20} MB).")
        return body
