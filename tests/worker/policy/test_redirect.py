"""Which redirects are a portal's move (followed) and which are not (an unknown result). Pure."""

from __future__ import annotations

import pytest

from worker.policy.redirect import accept_redirect

OLD = "https://acme.bitrix24.ru/rest/1/s3cret/voximplant.callback.start.json"
PATH = "/rest/1/s3cret/voximplant.callback.start.json"
LOCAL = "http://127.0.0.1:8024" + PATH


@pytest.mark.parametrize(
    ("request_url", "location", "origin", "refused"),
    [
        (OLD, "https://acme.bitrix24.com" + PATH, "https://acme.bitrix24.com", ""),
        (OLD, "https://ACME.Bitrix24.com:443" + PATH, "https://acme.bitrix24.com:443", ""),
        (OLD, "https://new.example:8443" + PATH, "https://new.example:8443", ""),
        (OLD, "http://acme.bitrix24.com" + PATH, None, "http is not https"),
        (OLD, "http://127.0.0.1:8024" + PATH, None, "http is not https"),
        (OLD, "ftp://acme.bitrix24.com" + PATH, None, "ftp is not https"),
        (OLD, "https://acme.bitrix24.com/rest/1/s3cret/other.method.json", None, "another path"),
        (OLD, "https://acme.bitrix24.com/evil" + PATH, None, "another path"),
        (OLD, "https://acme.bitrix24.com/rest/1/s3cret/", None, "another path"),
        (OLD, "https://acme.bitrix24.com" + PATH + "?next=1", None, "user info, query or fragment"),
        (OLD, "https://user:pw@acme.bitrix24.com" + PATH, None, "user info, query or fragment"),
        (OLD, "https://acme.bitrix24.com" + PATH + "#x", None, "user info, query or fragment"),
        (OLD, "https://acme.bitrix24.ru" + PATH, None, "the same host"),
        (OLD, PATH, None, "not an absolute URL"),
        (OLD, "//acme.bitrix24.com" + PATH, None, "not an absolute URL"),
        (OLD, None, None, "no Location"),
        (OLD, "", None, "no Location"),
        (OLD, "https://acme.bitrix24.com:99999" + PATH, None, "not a URL"),
        (LOCAL, "http://localhost:8024" + PATH, "http://localhost:8024", ""),
        (LOCAL, "http://127.0.0.2:8024" + PATH, "http://127.0.0.2:8024", ""),
        (LOCAL, "https://acme.bitrix24.com" + PATH, "https://acme.bitrix24.com", ""),
        (LOCAL, "http://acme.bitrix24.com" + PATH, None, "http is not https"),
        (LOCAL, "http://localhost:8024/elsewhere" + PATH, None, "another path"),
    ],
)
def test_accept_redirect(request_url: str, location: str | None, origin: str | None, refused: str) -> None:
    """Only https (or loopback http from loopback http), another host and the very same path are followed:
    a secret in the path never goes to another path or over plain http."""
    decision = accept_redirect(request_url, location)
    assert (decision.origin, decision.refused) == (origin, refused)
