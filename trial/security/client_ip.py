"""The client address that login throttling (django-axes) counts failures against.

Behind TRUSTED_PROXY_COUNT reverse proxies, each appending the address it saw to X-Forwarded-For, the client is
the entry that many places from the right: entries further left were written by the client and can be forged.
Without a proxy (TRUSTED_PROXY_COUNT=0) X-Forwarded-For is ignored and REMOTE_ADDR is the client. This trusts the
same proxy that SECURE_PROXY_SSL_HEADER trusts for X-Forwarded-Proto.
"""

from django.conf import settings


def client_ip(request) -> str | None:
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")
