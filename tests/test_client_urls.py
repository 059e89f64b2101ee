"""Client: URLs, rvt-* params, subprotocols, keys, inputs and settings (pure functions).

Expected strings are the request lines and subprotocols observed from ``rivetkit@2.3.19``
(``shared/spec/client-protocol.md``).
"""

from __future__ import annotations

import base64

import cbor2
import pytest

from rivetkit.client.config import parse_endpoint, resolve_config
from rivetkit.client.query import (
    ForIdQuery,
    GetOrCreateQuery,
    GetQuery,
    b64_std,
    b64url_nopad,
    encode_input,
    normalize_key,
)
from rivetkit.client.urls import (
    conn_params_header,
    connect_subprotocols,
    encode_uri_component,
    form_encode,
    gateway_url,
    is_truthy_params,
    manager_url,
    rvt_params,
    websocket_url,
)

EP = "http://127.0.0.1:6420"


def url(query, path, *, token=None, pool="default", namespace="default"):
    return gateway_url(EP, query, path, namespace=namespace, pool=pool, token=token)


def target(full_url: str) -> str:
    """The request-line target (path and query) of a URL on EP."""
    assert full_url.startswith(EP)
    return full_url[len(EP) :]


# MARK: gateway URLs


def test_observed_get_or_create_action_line() -> None:
    q = GetOrCreateQuery("counter", ("k",))
    assert (
        "POST "
        + target(url(q, "/action/increment"))
        == "POST /gateway/counter/action/increment?rvt-namespace=default&rvt-method=getOrCreate"
        "&rvt-runner=default&rvt-key=k&rvt-crash-policy=sleep"
    )


def test_observed_connect_url() -> None:
    q = GetOrCreateQuery("counter", ("k",))
    assert (
        websocket_url(url(q, "/connect"))
        == "ws://127.0.0.1:6420/gateway/counter/connect?rvt-namespace=default"
        "&rvt-method=getOrCreate&rvt-runner=default&rvt-key=k&rvt-crash-policy=sleep"
    )


def test_for_id_uses_direct_form() -> None:
    q = ForIdQuery("counter", "abc123")
    assert target(url(q, "/action/increment")) == "/gateway/abc123/action/increment"
    assert websocket_url(url(q, "/connect")) == "ws://127.0.0.1:6420/gateway/abc123/connect"


def test_for_id_with_token() -> None:
    q = ForIdQuery("counter", "a/b")
    assert target(url(q, "/connect", token="t o@k")) == "/gateway/a%2Fb@t%20o%40k/connect"


def test_get_method_params() -> None:
    q = GetQuery("counter", ("k",))
    assert target(url(q, "/action/x")) == (
        "/gateway/counter/action/x?rvt-namespace=default&rvt-method=get&rvt-key=k"
    )
    assert target(url(q, "/action/x", token="tok")) == (
        "/gateway/counter/action/x?rvt-namespace=default&rvt-method=get&rvt-key=k&rvt-token=tok"
    )


def test_key_joined_with_commas_unescaped() -> None:
    q = GetOrCreateQuery("counter", ("k", "a,b"))
    assert "&rvt-key=k%2Ca%2Cb&" in url(q, "/connect")


def test_empty_key_omits_param() -> None:
    assert "rvt-key" not in url(GetOrCreateQuery("counter", ()), "/connect")
    assert "rvt-key" not in url(GetQuery("counter", ()), "/connect")


def test_param_order_with_everything() -> None:
    q = GetOrCreateQuery("my actor", ("a b",), cbor2.dumps({"x": 1}), "eu")
    params = rvt_params(q, namespace="ns", pool="p", token="tok")
    assert [k for k, _ in params] == [
        "rvt-namespace",
        "rvt-method",
        "rvt-runner",
        "rvt-key",
        "rvt-input",
        "rvt-region",
        "rvt-crash-policy",
        "rvt-token",
    ]
    full = gateway_url(EP, q, "/connect", namespace="ns", pool="p", token="tok")
    assert full.startswith(f"{EP}/gateway/my%20actor/connect?rvt-namespace=ns&")
    assert "&rvt-key=a+b&" in full  # URLSearchParams writes spaces as +
    assert "&rvt-runner=p&" in full


def test_rvt_input_is_base64url_nopad_cbor() -> None:
    value = {"name": "x" * 10, "n": [1, 2, 3], "b": b"\xff\xfe"}
    q = GetOrCreateQuery("counter", ("k",), encode_input(value))
    params = dict(rvt_params(q, namespace="default", pool="default", token=None))
    text = params["rvt-input"]
    assert "=" not in text and "+" not in text and "/" not in text
    assert cbor2.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))) == value


def test_path_with_query_gets_ampersand() -> None:
    q = GetQuery("c", ("k",))
    assert target(url(q, "/request/x?a=1")) == (
        "/gateway/c/request/x?a=1&rvt-namespace=default&rvt-method=get&rvt-key=k"
    )


def test_for_id_has_no_rvt_params() -> None:
    with pytest.raises(ValueError):
        rvt_params(ForIdQuery("c", "id"), namespace="default", pool="default", token=None)


def test_websocket_url_schemes() -> None:
    assert websocket_url("https://h/x") == "wss://h/x"
    assert websocket_url("http://h/x") == "ws://h/x"


def test_encode_uri_component_matches_js() -> None:
    # JS: encodeURIComponent("a b/c?d=é!~*'()") === "a%20b%2Fc%3Fd%3D%C3%A9!~*'()"
    assert encode_uri_component("a b/c?d=é!~*'()") == "a%20b%2Fc%3Fd%3D%C3%A9!~*'()"


def test_form_encode_matches_url_search_params() -> None:
    # JS: new URLSearchParams({v: "a b~*-._!'()é,"}).toString()
    #     === "v=a+b%7E*-._%21%27%28%29%C3%A9%2C"
    assert form_encode("a b~*-._!'()é,") == "a+b%7E*-._%21%27%28%29%C3%A9%2C"


# MARK: manager URLs


def test_manager_url_appends_namespace() -> None:
    assert manager_url(EP, "/metadata", namespace="default") == f"{EP}/metadata?namespace=default"
    assert (
        manager_url(EP, "/actors", namespace="ns", params=[("name", "c"), ("key", "k/a,b")])
        == f"{EP}/actors?name=c&key=k%2Fa%2Cb&namespace=ns"
    )


# MARK: subprotocols and params


def test_observed_subprotocols() -> None:
    assert connect_subprotocols("bare", {"tok": "abc"}) == [
        "rivet",
        "rivet_encoding.bare",
        "rivet_conn_params.%7B%22tok%22%3A%22abc%22%7D",
    ]


def test_subprotocols_without_params() -> None:
    for params in (None, False, 0, ""):
        assert connect_subprotocols("json", params) == ["rivet", "rivet_encoding.json"]
    # JS truthiness: an empty object or list is truthy.
    assert connect_subprotocols("cbor", {})[-1] == "rivet_conn_params.%7B%7D"
    assert connect_subprotocols("cbor", [])[-1] == "rivet_conn_params.%5B%5D"


def test_subprotocol_params_escape_parens_and_keep_unicode() -> None:
    proto = connect_subprotocols("bare", {"u": "(é)"})[-1]
    assert proto == "rivet_conn_params.%7B%22u%22%3A%22%28%C3%A9%29%22%7D"


def test_truthiness() -> None:
    assert not is_truthy_params(None)
    assert not is_truthy_params(0.0)
    assert is_truthy_params(True)
    assert is_truthy_params(1)
    assert is_truthy_params("x")


def test_conn_params_header() -> None:
    assert conn_params_header(None) is None
    assert conn_params_header({"user": "é"}) == '{"user":"\\u00e9"}'
    assert conn_params_header({}) == "{}"
    with pytest.raises(TypeError):
        conn_params_header({"x": object()})
    with pytest.raises(TypeError):
        connect_subprotocols("bare", {"x": float("nan")})


# MARK: keys and inputs


def test_normalize_key() -> None:
    assert normalize_key(None) == ()
    assert normalize_key("k") == ("k",)
    assert normalize_key(["a", "b"]) == ("a", "b")
    assert normalize_key(("a",)) == ("a",)
    for bad in (b"k", 5, ["a", 1], [None]):
        with pytest.raises(TypeError):
            normalize_key(bad)  # type: ignore[arg-type]


def test_base64_helpers() -> None:
    assert b64url_nopad(b"\xfb\xff") == "-_8"
    assert b64_std(b"\xfb\xff") == "+/8="


# MARK: settings


def test_parse_endpoint() -> None:
    assert parse_endpoint("http://127.0.0.1:6420/") == ("http://127.0.0.1:6420", None, None)
    assert parse_endpoint("https://h/base/") == ("https://h/base", None, None)
    assert parse_endpoint("http://my-ns:s%40cret@h:1") == ("http://h:1", "my-ns", "s@cret")
    for bad in ("ws://h", "http://h/?x=1", "http://h/#f", "127.0.0.1:6420", "http://"):
        with pytest.raises(ValueError):
            parse_endpoint(bad)


def resolve(endpoint=None, **kw):
    args = dict(
        encoding="bare",
        namespace=None,
        token=None,
        headers=None,
        pool=None,
        disable_metadata_lookup=False,
        metadata_timeout=30.0,
        max_input_size=4096,
        retry=None,
    )
    args.update(kw)
    return resolve_config(endpoint, **args)


def test_config_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RIVET_ENGINE", "RIVET_ENDPOINT", "RIVET_NAMESPACE", "RIVET_TOKEN", "RIVET_POOL"):
        monkeypatch.delenv(name, raising=False)
    config = resolve()
    assert config.endpoint == "http://127.0.0.1:6420"
    assert (config.namespace, config.token, config.pool, config.encoding) == (
        "default",
        None,
        "default",
        "bare",
    )


def test_config_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIVET_ENDPOINT", "http://env:1")
    monkeypatch.setenv("RIVET_NAMESPACE", "env-ns")
    monkeypatch.setenv("RIVET_TOKEN", "env-tok")
    monkeypatch.setenv("RIVET_POOL", "env-pool")
    config = resolve()
    assert (config.endpoint, config.namespace, config.token, config.pool) == (
        "http://env:1",
        "env-ns",
        "env-tok",
        "env-pool",
    )
    config = resolve("http://url-ns:url-tok@h:2")
    assert (config.endpoint, config.namespace, config.token) == ("http://h:2", "url-ns", "url-tok")
    config = resolve("http://url-ns:url-tok@h:2", namespace="arg", token="t", pool="p")
    assert (config.namespace, config.token, config.pool) == ("arg", "t", "p")


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        resolve(encoding="msgpack")
    with pytest.raises(ValueError):
        resolve(metadata_timeout=0)
    with pytest.raises(TypeError):
        resolve(headers={"x": 1})
