"""End to end in headless Chromium: the page over a live server, as a person uses it."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import httpx
import pytest

from browser import chromium_page, require_chromium, wait_js
from ohlora.app.background import serve_in_background
from ohlora.app.server import create_app
from ohlora.config import IDLE_SCORES

pytestmark = pytest.mark.browser

AVATAR = "document.getElementById('avatar')"
BOT_ANSWERS = ".msg.bot:not(.greeting)"


def avatar_state(page) -> dict:
    return page.evaluate(
        f"(() => {{ const s = {AVATAR}; return {{...s.dataset, mouthPath: s.querySelector('#av-mouth').getAttribute('d'),"
        f" head: s.querySelector('#av-head').getAttribute('transform')}}; }})()"
    )


def send(page, text: str, n_before: int, timeout: float = 20.0) -> dict:
    """Type and send one message; wait for its answer bubble; return the API's JSON."""
    page.fill("#message-input", text)
    with page.expect_response(lambda r: r.url.endswith("/api/chat") and r.request.method == "POST") as info:
        page.click("#send-btn")
    assert info.value.status == 200, info.value.text()
    out = info.value.json()
    wait_js(page, f"document.querySelectorAll('{BOT_ANSWERS}').length === {n_before + 1}", timeout)
    return out


def wait_avatar_reaches(page, scores: dict, tol: float = 0.12) -> None:
    """The shown state eases to the answer's scores (idle sway is at most ~0.08)."""
    wait_js(
        page,
        f"""(() => {{ const d = {AVATAR}.dataset;
            return d.phase === 'hold'
              && Math.abs(+d.eyes - {scores['eyes']}) < {tol}
              && Math.abs(+d.mouth - {scores['mouth']}) < {tol}
              && Math.abs(+d.pose - {scores['pose']}) < {tol}; }})()""",
        timeout=10,
    )


def run_scenario(url: str, first: str, second: str, timeout: float = 20.0) -> dict:
    """Open the page, set a name, send two messages, check answers, avatar and memory,
    delete the saved memory. Returns what it saw."""
    with chromium_page(timeout=timeout) as page:
        page.goto(url)
        wait_js(page, f"{AVATAR}.dataset.phase === 'idle'")
        assert page.title().startswith("오로라")

        page.fill("#name-input", "테스터")
        page.click("#name-form button")
        wait_js(page, "localStorage.getItem('ohlora.user') === '테스터'")

        before = avatar_state(page)
        a1 = send(page, first, 0, timeout)
        bubbles = page.locator(BOT_ANSWERS)
        assert bubbles.nth(0).locator(".text").text_content() == a1["answer"]
        # the avatar heads for this answer's scores, and gets there
        after = avatar_state(page)
        assert after["targetEyes"] == f"{a1['scores']['eyes']:.3f}"
        assert after["targetMouth"] == f"{a1['scores']['mouth']:.3f}"
        assert after["targetPose"] == f"{a1['scores']['pose']:.3f}"
        wait_avatar_reaches(page, a1["scores"])
        moved = avatar_state(page)
        assert moved["mouthPath"] != before["mouthPath"]
        assert moved["head"] != before["head"]
        assert (moved["eyes"], moved["mouth"], moved["pose"]) != (before["eyes"], before["mouth"], before["pose"])

        a2 = send(page, second, 1, timeout)
        assert bubbles.nth(1).locator(".text").text_content() == a2["answer"]
        assert bubbles.count() == 2
        saved = a2["memory_saved"]
        assert saved, f"the second message saved no memory: {a2}"
        listed = "Array.from(document.querySelectorAll('#memory-list li')).map(li => li.dataset.text)"
        wait_js(page, f"{listed}.includes({json.dumps(saved)})")
        item = page.locator("#memory-list li").nth(page.evaluate(listed).index(saved))
        assert item.locator(".mem-value").text_content() == saved.strip("[]").split(":", 1)[1].strip()
        assert page.locator("#summary").inner_text() == (a2["summary"] or "아직 요약이 없어요.")

        item.get_by_role("button").click()
        wait_js(page, f"!{listed}.includes({json.dumps(saved)})")
        api_items = httpx.get(f"{url}/api/memory/테스터").json()["items"]
        assert saved not in [i["text"] for i in api_items]
        return {"first": a1, "second": a2, "before": before, "moved": moved}


def test_page_with_fake_engine(fake_engine):
    require_chromium()
    with serve_in_background(create_app(fake_engine)) as url:
        seen = run_scenario(url, "로라야 안녕! 오늘 날씨 좋다 ☀️", "기억해 좋아하는 가수=아이유")
    assert seen["second"]["memory_saved"] == "[좋아하는 가수: 아이유]"


def test_page_with_tiny_engine(tiny_engine):
    """The same scenario on the real Engine and tiny random models. Its memory head
    cannot be relied on to save on cue, so `기억해 KEY=VALUE` is saved by the
    ForcedMemory rule when the head saved nothing (through the engine's own store)."""
    require_chromium()
    from app_fakes import ForcedMemory

    with serve_in_background(create_app(ForcedMemory(tiny_engine))) as url:
        seen = run_scenario(url, "로라야 안녕! 오늘 날씨 좋다", "기억해 좋아하는 가수=아이유", timeout=240)
    assert seen["first"]["generate_calls"] >= 2  # real generation happened
    assert seen["second"]["memory_saved"]


def test_scripted_conversation_and_readme_screenshot(tmp_path):
    """Four turns of a hand-written conversation: memory chips, the memory panel in
    order, the summary. With OHLORA_SCREENSHOT=1 it writes docs/screenshot.png."""
    require_chromium()
    from app_fakes import SCRIPT, ScriptedEngine

    out = tmp_path / "screenshot.png"
    if os.environ.get("OHLORA_SCREENSHOT") == "1":
        out = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
    prompts = list(SCRIPT)
    with serve_in_background(create_app(ScriptedEngine())) as url, chromium_page(1280, 900) as page:
        page.goto(url)
        page.fill("#name-input", "민수")
        page.click("#name-form button")
        for i, prompt in enumerate(prompts):
            last = send(page, prompt, i)
        texts = page.locator(f"{BOT_ANSWERS} .text").all_inner_texts()
        assert texts == [SCRIPT[p][0] for p in prompts]
        assert page.locator(".chip.saved").all_inner_texts() == [
            "기억했어 [좋아하는 가수: 아이유]", "기억했어 [내일 일정: 친구랑 카페 방문]"]
        assert page.locator(".chip.used").all_inner_texts() == ["떠올린 기억 [좋아하는 가수: 아이유]"]
        wait_js(page, "document.querySelectorAll('#memory-list li').length === 2")  # fetched after the answer shows
        assert page.locator("#memory-list li").evaluate_all("ls => ls.map(l => l.dataset.text)") == [
            "[좋아하는 가수: 아이유]", "[내일 일정: 친구랑 카페 방문]"]
        assert page.locator("#memory-empty").is_hidden()
        assert page.locator("#summary").inner_text() == SCRIPT[prompts[-1]][3]
        assert page.locator("#expression-label").inner_text() == "눈 아주 크게 · 입 아주 크게 · 고개 많이"
        wait_avatar_reaches(page, last["scores"])
        page.locator("#message-input").blur()
        page.screenshot(path=str(out))
    assert out.stat().st_size > 10_000


def test_avatar_eases_on_a_cosine_holds_returns_to_idle_and_blinks(fake_engine):
    """The avatar's motion, read from its own state each frame (no timing assertions:
    whichever frames we happen to sample must satisfy the curve)."""
    require_chromium()
    probe = """(() => { const a = window.ohloraPage.avatar, d = a.svg.dataset;
        return {t: a.lastFrame, start: a.start, dur: a.duration, phase: a.phase,
                cur: {...a.current}, from: {...a.from}, to: {...a.target},
                shown: {eyes: +d.eyes, mouth: +d.mouth, pose: +d.pose}, blink: d.blink}; })()"""
    idle = IDLE_SCORES  # SPEC §1 step 7; the page reads them from GET /api/avatar
    with serve_in_background(create_app(fake_engine)) as url, chromium_page() as page:
        page.goto(url)
        wait_js(page, "window.ohloraPage && window.ohloraPage.avatar.lastFrame > 0")
        # idle: the base state is the idle scores; the shown state sways a little around it
        shown = []
        for _ in range(12):
            s = page.evaluate(probe)
            assert s["phase"] == "idle" and s["cur"] == idle
            shown.append(s["shown"])
            page.wait_for_timeout(80)
        for k in idle:
            assert all(abs(x[k] - idle[k]) <= 0.08 for x in shown), k
        assert len({x["pose"] for x in shown}) > 1  # it moves
        # periodic blinks
        wait_js(page, f"{AVATAR}.dataset.blink === '1'", timeout=15)

        target = {"eyes": 1.15, "mouth": 1.5, "pose": 1.6}
        page.evaluate(f"window.ohloraPage.avatar.express({target})")
        samples = []
        while True:
            s = page.evaluate(probe)
            if s["phase"] != "react":
                break
            samples.append(s)
            page.wait_for_timeout(15)
        assert samples, "no frame sampled while easing"
        for s in samples:  # every sampled frame lies on the cosine curve from `from` to `to`
            u = min(max((s["t"] - s["start"]) / s["dur"], 0), 1)
            e = (1 - math.cos(math.pi * u)) / 2
            for k in idle:
                assert s["cur"][k] == pytest.approx(s["from"][k] + (s["to"][k] - s["from"][k]) * e, abs=1e-9)
        assert samples[0]["from"] == pytest.approx(idle, abs=1e-9)  # it started from where she was
        s = page.evaluate(probe)
        assert s["phase"] == "hold" and s["cur"] == pytest.approx(target)

        # a new answer mid-way starts from the current state, not from idle or the old target
        page.evaluate("window.ohloraPage.avatar.express({eyes: -0.2, mouth: 0.4, pose: -0.6})")
        page.wait_for_timeout(300)
        mid = page.evaluate(probe)
        page.evaluate("window.ohloraPage.avatar.express({eyes: 0.5, mouth: 1.2, pose: 0.9})")
        after = page.evaluate(probe)
        for k in idle:  # `from` of the new move is the state at the moment of the call (between mid and now)
            lo, hi = sorted((mid["cur"][k], -0.2 if k == "eyes" else 0.4 if k == "mouth" else -0.6))
            assert lo - 1e-9 <= after["from"][k] <= hi + 1e-9

        # after holding, back to idle exactly
        wait_js(page, "window.ohloraPage.avatar.phase === 'idle'", timeout=20)
        assert page.evaluate(probe)["cur"] == pytest.approx(idle, abs=1e-9)


def test_avatar_waits_still_for_the_idle_scores_and_recovers(fake_engine):
    """While GET /api/avatar fails the avatar stays still (no animation, no numbers of its
    own) and keeps an answer; the page retries, then rests at the server's idle scores
    and shows the kept answer, easing from idle."""
    require_chromium()
    failing, calls = [True], []

    def avatar_route(route):
        calls.append(failing[0])
        if failing[0]:
            route.fulfill(status=503, content_type="application/json", body='{"detail": "down", "errors": []}')
        else:
            route.continue_()

    with serve_in_background(create_app(fake_engine)) as url, \
            chromium_page(expected_console=("Failed to load resource",)) as page:
        page.route("**/api/avatar", avatar_route)
        page.goto(url)
        wait_js(page, "window.ohloraPage !== undefined")
        wait_js(page, "document.getElementById('summary').textContent !== ''")
        page.wait_for_timeout(1200)  # long enough for the first retries (0.5 s, then 1 s)
        assert len(calls) >= 2 and all(calls)
        state = page.evaluate("(() => { const a = window.ohloraPage.avatar; return {phase: a.phase, idle: a.idle, "
                              "cur: a.current, frame: a.lastFrame === undefined, data: {...a.svg.dataset}}; })()")
        assert state["phase"] == "loading" and state["idle"] is None and state["cur"] is None and state["frame"]
        assert state["data"]["phase"] == "loading" and "eyes" not in state["data"]  # still, neutral SVG drawing

        answer = {"eyes": 1.1, "mouth": 1.5, "pose": 1.2}
        page.evaluate(f"window.ohloraPage.avatar.express({answer})")
        assert page.evaluate("window.ohloraPage.avatar.phase") == "loading"  # kept, not shown yet

        failing[0] = False
        wait_js(page, "window.ohloraPage.avatar.idle !== null", timeout=10)  # next retry within 5 s
        s = page.evaluate("(() => { const a = window.ohloraPage.avatar; return {idle: a.idle, from: a.from, to: a.target, phase: a.phase}; })()")
        assert s["idle"] == IDLE_SCORES
        assert s["phase"] in ("react", "hold") and s["to"] == pytest.approx(answer)
        assert s["from"] == pytest.approx(IDLE_SCORES)
        wait_avatar_reaches(page, answer)
        assert calls[-1] is False


def test_docs_page_points_to_the_schema_under_the_csp(fake_engine):
    """/docs renders under the page's CSP with nothing blocked (no CDN, no inline code) and
    its link leads to the OpenAPI schema."""
    require_chromium()
    with serve_in_background(create_app(fake_engine)) as url, chromium_page() as page:
        requested = []
        page.on("request", lambda r: requested.append(r.url))
        page.goto(url + "/docs")
        assert "/openapi.json" in page.locator("body").inner_text()
        assert page.title() == "Oh-LoRA API"
        assert all(u.startswith(url) for u in requested), requested
        link = page.evaluate("document.querySelector('a[href=\"/openapi.json\"]').href")
        assert "/api/avatar" in httpx.get(link).json()["paths"]  # (not opened in Chromium: its JSON view asks for /favicon.ico)


def test_phone_width_layout_stacks_without_overlap(fake_engine):
    """At 420 px the cards stack: nothing overflows sideways, nothing covers the send button."""
    require_chromium()
    with serve_in_background(create_app(fake_engine)) as url, chromium_page(420, 900) as page:
        page.goto(url)
        send(page, "기억해 좋아하는 음식=떡볶이", 0)  # a click that another card covering the button would steal
        # the page fetches the memory list after showing the answer: wait for it, so the boxes
        # below are those of the finished layout (a bare count right after the answer raced it)
        wait_js(page, "document.querySelectorAll('#memory-list li').length === 1")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        # one snapshot of all three (one JS call, one layout): read one by one, the avatar card could
        # grow between two reads (the answer's summary arriving) and the boxes came from two layouts
        boxes = page.evaluate("""[".avatar-card", ".chat-card", ".memory-card"].map(s => {
            const r = document.querySelector(s).getBoundingClientRect(); return {y: r.top + window.scrollY, height: r.height}; })""")
        for upper, lower in zip(boxes, boxes[1:]):
            assert upper["y"] + upper["height"] <= lower["y"] + 0.5  # stacked, not overlapping
        assert page.locator("#memory-list li").count() == 1
