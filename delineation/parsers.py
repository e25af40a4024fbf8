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
        too_large = ParseError(f"The contour is larger than the server accepts in one request ({limit // 2**20} MB).")
        request = (parser_context or {}).get("request")
        claimed = str(request.META.get("CONTENT_LENGTH") or "") if request is not None else ""
        if claimed.isdecimal() and int(claimed) > limit:  # refused before reading what the client says it sends
            raise too_large
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise too_large
        return body
