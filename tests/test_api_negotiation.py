"""``tachycore.rest.JSONNegotiation``: the kv and jobs APIs' content negotiation answers as
DRF's own does, a 406 included."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from tachycore.rest import JSONNegotiation

ACCEPTS = [None, "*/*", "application/json", "application/json; indent=4", "application/*",
           "text/html, application/json;q=0.9", "application/json, */*"]


def request(accept: str | None, query: str = "") -> Request:
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    return Request(APIRequestFactory().get("/api/kv/keys/k/" + query, **headers))


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "?format=json", "?x=1"])
def test_negotiation__answers_as_drf_does(accept, query):
    renderers = [JSONRenderer()]

    chosen = JSONNegotiation().select_renderer(request(accept, query), renderers)

    assert chosen == DefaultContentNegotiation().select_renderer(request(accept, query), renderers)


def test_negotiation__what_json_cannot_answer_is_406():
    with pytest.raises(NotAcceptable):
        JSONNegotiation().select_renderer(request("text/html"), [JSONRenderer()])


def test_negotiation__a_view_that_renders_html_first_is_left_to_drf():
    renderers = [BrowsableAPIRenderer(), JSONRenderer()]

    chosen = JSONNegotiation().select_renderer(request("*/*"), renderers)

    assert chosen[0] is renderers[0]
