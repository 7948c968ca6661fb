"""The HTTP API over a fake engine: shapes, validation, isolation, deletes."""

from __future__ import annotations

import re
import unicodedata

import pytest

from ohlora.app.server import STATIC_DIR
from ohlora.config import IDLE_SCORES


def chat(client, user, message):
    r = client.post("/api/chat", json={"user": user, "message": message})
    assert r.status_code == 200, r.text
    return r.json()


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "engine": "FakeEngine"}


def test_chat_returns_the_turn_result(client):
    out = chat(client, "민수", "로라야 안녕! 😀")
    assert out["user"] == "민수"
    assert out["answer"] == "로라야 안녕! 😀? 그렇구나! 😀"
    assert out["refused"] is False
    assert set(out["expression"]) == {"eyes", "mouth", "pose"}
    assert set(out["scores"]) == {"eyes", "mouth", "pose"}
    assert all(isinstance(v, float) for v in out["scores"].values())
    assert out["summary"] == "사용자가 로라야 안녕! 😀 라고 함"


def test_blank_message_reaches_the_engines_refusal(client):
    out = chat(client, "minsu", "   ")
    assert out["refused"] is True
    assert out["answer"]
    assert out["expression"] is None and out["scores"] is None  # nothing to show: the avatar stays idle


def test_memory_saved_listed_and_deleted(client):
    out = chat(client, "지은", "기억해 좋아하는 가수=아이유")
    assert out["memory_saved"] == "[좋아하는 가수: 아이유]"
    items = client.get("/api/memory/지은").json()
    assert items["user"] == "지은"
    assert [i["text"] for i in items["items"]] == ["[좋아하는 가수: 아이유]"]
    assert items["items"][0]["active"] is True

    r = client.delete("/api/memory/지은/좋아하는 가수")
    assert r.status_code == 200
    assert r.json() == {"user": "지은", "key": "좋아하는 가수", "forgotten": 1}
    assert client.get("/api/memory/지은").json()["items"] == []
    hist = client.get("/api/memory/지은", params={"history": "true"}).json()["items"]
    assert [(i["text"], i["active"]) for i in hist] == [("[좋아하는 가수: 아이유]", False)]


def test_delete_of_nothing_is_404(client):
    r = client.delete("/api/memory/지은/없는 키")
    assert r.status_code == 404
    assert "없는 키" in r.json()["detail"]


def test_replaced_value_is_reported(client):
    chat(client, "u1", "기억해 상태=피곤함")
    out = chat(client, "u1", "기억해 상태=배고픔")
    assert out["memory_replaced"] == "[상태: 피곤함]"
    assert [i["value"] for i in client.get("/api/memory/u1").json()["items"]] == ["배고픔"]


def test_users_see_only_their_own_memory(client):
    chat(client, "alice", "기억해 취미=등산")
    chat(client, "bob", "기억해 취미=게임")
    assert [i["value"] for i in client.get("/api/memory/alice").json()["items"]] == ["등산"]
    assert [i["value"] for i in client.get("/api/memory/bob").json()["items"]] == ["게임"]
    # bob deleting "취미" leaves alice's
    assert client.delete("/api/memory/bob/취미").status_code == 200
    assert [i["value"] for i in client.get("/api/memory/alice").json()["items"]] == ["등산"]
    assert client.get("/api/summary/alice").json()["summary"] == "사용자가 기억해 취미=등산 라고 함"


def test_nfd_user_id_is_the_same_user(client):
    nfc = "민수"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc
    chat(client, nfd, "기억해 이름=민수")
    assert [i["value"] for i in client.get(f"/api/memory/{nfc}").json()["items"]] == ["민수"]


def test_summary_and_reset(client):
    assert client.get("/api/summary/new").json() == {"user": "new", "summary": ""}
    chat(client, "new", "오늘 시험 봤어")
    assert client.get("/api/summary/new").json()["summary"] == "사용자가 오늘 시험 봤어 라고 함"
    r = client.delete("/api/summary/new")
    assert r.status_code == 200 and r.json()["summary"] == ""


@pytest.mark.parametrize(
    "body, where",
    [
        ({"user": "", "message": "hi"}, "user"),
        ({"user": "a" * 33, "message": "hi"}, "user"),
        ({"user": "..", "message": "hi"}, "user"),
        ({"user": "../etc/passwd", "message": "hi"}, "user"),
        ({"user": "a b", "message": "hi"}, "user"),
        ({"user": "민수😀", "message": "hi"}, "user"),
        ({"user": "ㅁㅅ", "message": "hi"}, "user"),  # bare jamo are not syllables
        ({"user": "ok", "message": "가" * 501}, "message"),
        ({"user": "ok", "message": "nul\x00byte"}, "message"),
        ({"user": "ok", "message": "esc\x1b[31m"}, "message"),
        ({"user": "ok"}, "message"),
        ({"message": "hi"}, "user"),
        ({"user": "ok", "message": 5}, "message"),
        ({"user": ["ok"], "message": "hi"}, "user"),
        ({"user": "ok", "message": "hi", "extra": 1}, "extra"),
    ],
)
def test_bad_chat_bodies_get_422_naming_the_field(client, fake_engine, body, where):
    r = client.post("/api/chat", json=body)
    assert r.status_code == 422, r.text
    out = r.json()
    assert where in out["detail"]
    assert "\x00" not in r.text and "가" * 501 not in r.text  # the input is never echoed back
    assert fake_engine.turns == 0


def test_message_at_the_cap_is_accepted(client):
    assert client.post("/api/chat", json={"user": "ok", "message": "가" * 500}).status_code == 200


@pytest.mark.parametrize(
    "data, headers",
    [
        (b"{not json", {"content-type": "application/json"}),
        (b"", {"content-type": "application/json"}),
        (b"[1, 2]", {"content-type": "application/json"}),
        (b"null", {"content-type": "application/json"}),
        (b'"text"', {"content-type": "application/json"}),
        (b'{"user": "ok", "message": "caf\xe9"}', {"content-type": "application/json"}),  # Latin-1, not UTF-8
        (b"\xff\xfe\x00garbage", {"content-type": "application/json"}),
        (b"user=ok&message=hi", {"content-type": "application/x-www-form-urlencoded"}),
    ],
)
def test_bad_json_gets_4xx(client, data, headers):
    r = client.post("/api/chat", content=data, headers=headers)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.json()["detail"]


def test_oversized_body_gets_413(client, fake_engine):
    r = client.post("/api/chat", content=b'{"user": "ok", "message": "' + b"a" * 20000 + b'"}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "bytes" in r.json()["detail"]
    assert fake_engine.turns == 0


def test_oversized_streamed_body_gets_413(client, fake_engine):
    def chunks():  # no content-length: chunked transfer
        yield b'{"user": "ok", "message": "'
        for _ in range(40):
            yield b"a" * 1000
        yield b'"}'

    r = client.post("/api/chat", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert fake_engine.turns == 0


@pytest.mark.parametrize("path", ["/api/memory/%2E%2E", "/api/memory/a%20b", "/api/memory/" + "x" * 40,
                                  "/api/summary/%00", "/api/memory/-rf"])
def test_bad_user_in_path_gets_422(client, path):
    r = client.get(path)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("user:")


def test_bad_key_in_path_gets_422(client):
    assert client.delete("/api/memory/ok/" + "k" * 65).status_code == 422
    assert client.delete("/api/memory/ok/%20").status_code == 422
    assert client.delete("/api/memory/ok/a%00b").status_code == 422


def test_openapi_schema_describes_the_api(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/api/chat", "/api/memory/{user}", "/api/memory/{user}/{key}", "/api/summary/{user}", "/api/avatar", "/healthz"} <= set(paths)
    assert paths["/api/avatar"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/AvatarSettings"
    )
    assert "/docs" not in paths and "/redoc" not in paths
    assert paths["/api/chat"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/TurnResponse"
    )
    comps = schema["components"]["schemas"]
    assert comps["ChatRequest"]["properties"]["message"]["maxLength"] == 500
    assert {"answer", "scores", "expression", "memory_saved"} <= set(comps["TurnResponse"]["properties"])


def test_page_and_static_files_are_served_offline_only(client):
    r = client.get("/")
    assert r.status_code == 200 and "오로라" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "http://" not in r.text and "https://" not in r.text  # nothing fetched from elsewhere
    for name in ("app.js", "app.css"):
        s = client.get(f"/static/{name}")
        assert s.status_code == 200
        assert "http://" not in s.text and "https://" not in s.text
    assert client.get("/static/../server.py").status_code == 404


def test_avatar_idle_scores_are_the_configs(client):
    r = client.get("/api/avatar")
    assert r.status_code == 200
    assert r.json() == {"idle": IDLE_SCORES}  # exactly config.IDLE_SCORES (SPEC §1 step 7), one source


# `key: number` in JavaScript source (object literals), e.g. `eyes: 0.2` or `"mouth":1`
_JS_SCORE = re.compile(r"""["']?\b(eyes|mouth|pose)\b["']?\s*:\s*(-?(?:\d+\.?\d*|\.\d+)(?:e-?\d+)?)(?![\w.])""")


def _idle_literals(js: str) -> list[str]:
    """Places where JavaScript source writes an idle score of config.IDLE_SCORES as a literal:
    a `key: value` with the idle value of a key that is not 0 (0 is also a sway offset), or
    an object literal {eyes, mouth, pose} whose numbers are all the idle scores."""
    found = [m.group(0) for m in _JS_SCORE.finditer(js)
             if IDLE_SCORES[m.group(1)] != 0 and float(m.group(2)) == IDLE_SCORES[m.group(1)]]
    for obj in re.findall(r"\{[^{}]*\}", js):
        nums = {k: float(v) for k, v in _JS_SCORE.findall(obj)}
        if nums.keys() >= IDLE_SCORES.keys() and all(nums[k] == v for k, v in IDLE_SCORES.items()):
            found.append(obj)
    return found


def test_app_js_has_no_copy_of_the_idle_scores():
    js = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    assert _idle_literals(js) == []
    assert '"/api/avatar"' in js  # it reads them from the server instead
    # the check catches the constant app.js used to carry, and the calm branch's zero offsets are not idle scores
    assert _idle_literals("const IDLE = { eyes: 0.2, mouth: 1.0, pose: 0.0 };")
    assert _idle_literals("const X = {pose: 0, eyes: .2, 'mouth': 1};")
    assert not _idle_literals("return { eyes: 0, mouth: 0, pose: 0, breath: 0 }; eyes: 0.03 * s")


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_point_to_the_schema_and_load_nothing_from_elsewhere(client, path):
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert 'href="/openapi.json"' in r.text
    # FastAPI's own pages load Swagger UI / ReDoc from a CDN and start them with an inline script
    assert "http://" not in r.text and "https://" not in r.text and "<script" not in r.text.lower()
    assert "<style" not in r.text.lower() and "style=" not in r.text.lower()
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "http" not in csp and "*" not in csp
    assert client.get("/openapi.json").status_code == 200  # the link works
    assert client.get(path + "/oauth2-redirect").status_code == 404  # no Swagger leftovers


def test_favicon_ico_serves_the_page_icon(client):
    r = client.get("/favicon.ico")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("image/svg+xml")
    assert r.content == client.get("/static/favicon.svg").content
