// 오로라 page: chat, memory panel, summary, and the SVG avatar driven by each answer's
// expression scores (SPEC §1 step 7). No build step, no libraries, nothing fetched
// from elsewhere. The avatar's shown state is mirrored on the <svg> as data-eyes,
// data-mouth, data-pose (score units), data-blink and data-phase for tests.
// The idle scores come from the server (GET /api/avatar = config.IDLE_SCORES), never
// from a copy here that could drift from it.
"use strict";

// ---------------------------------------------------------------------------
// Avatar
// ---------------------------------------------------------------------------
const SCORE_KEYS = ["eyes", "mouth", "pose"];
const EASE_MS = 900; // to the answer's expression
const HOLD_MS = 2600; // keep it while the answer is read
const RETURN_MS = 1600; // back to idle
const EYE_CY = 122, EYE_RY = 16, MOUTH_Y = 160;

const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
// The reference moved its face between two states along a cosine curve: slow-fast-slow.
const cosineEase = (u) => (1 - Math.cos(Math.PI * u)) / 2;

// Score -> drawing. Eyes -0.2..1.2 -> openness 0.5..1 (never fully shut but for
// blinks: idle 0.2 reads as relaxed, not sleepy). Mouth 0.4..1.6: up to 0.8 a closed
// smile, then open to 1.6 (idle 1.0 = lips just parted). Pose -0.6..1.8 -> head tilt
// in degrees and a sideways shift of the features, so a larger pose turns the head.
const eyeOpen = (s) => clamp(0.5 + (0.5 * (s + 0.2)) / 1.4, 0.35, 1.05);
const mouthOpen = (s) => clamp((s - 0.8) / 0.8, 0, 1);
const headAngle = (p) => clamp(p, -1, 2) * 7;
const faceShift = (p) => clamp(p, -1, 2) * 4;

class Avatar {
  constructor(svg) {
    this.svg = svg;
    this.el = {
      head: svg.querySelector("#av-head"),
      face: svg.querySelector("#av-face"),
      hairFront: svg.querySelector("#av-hair-front"),
      body: svg.querySelector("#av-body"),
      mouth: svg.querySelector("#av-mouth"),
      brows: [svg.querySelector("#av-brow-l"), svg.querySelector("#av-brow-r")],
      eyeballs: Array.from(svg.querySelectorAll(".eyeball")),
      lashes: Array.from(svg.querySelectorAll(".lash")),
    };
    // Until the idle scores arrive (setIdle) she is not animated: the SVG shows its
    // still, neutral drawing and data-phase is "loading". There is deliberately no
    // fallback copy of the idle numbers (a copy would silently drift from the server's);
    // a still face is the safe state if the request keeps failing. An answer that comes
    // first is kept (pending) and shown as soon as the idle state is known.
    this.idle = null;
    this.pending = null;
    this.current = null;
    this.from = null;
    this.target = null;
    this.start = 0;
    this.duration = 1;
    this.phase = "loading";
    svg.dataset.phase = "loading";
    this.holdUntil = 0;
    this.nextBlink = performance.now() + 1500;
    this.blinkStart = -1;
    this.seed = [Math.random(), Math.random(), Math.random(), Math.random()].map((x) => x * 6.283);
    this.calm = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  }

  // The idle (base) scores, SPEC §1 step 7, from GET /api/avatar. The first call starts
  // the animation (at rest at these scores, then any answer that came meanwhile).
  setIdle(scores) {
    const idle = {};
    for (const k of SCORE_KEYS) {
      idle[k] = Number(scores && scores[k]);
      if (!Number.isFinite(idle[k])) throw new Error(`idle score ${k} is not a number`);
    }
    const first = this.idle === null;
    this.idle = idle;
    if (!first) return;
    this.current = { ...idle };
    this.from = { ...idle };
    this.target = { ...idle };
    this.phase = "idle";
    this.nextBlink = performance.now() + 1500;
    requestAnimationFrame((t) => this.frame(t));
    if (this.pending) {
      const p = this.pending;
      this.pending = null;
      this.express(p);
    }
  }

  moveTo(target, duration, phase) {
    this.from = { ...this.current }; // from wherever she is now: never a jump
    this.target = { ...target };
    this.start = performance.now();
    this.duration = duration;
    this.phase = phase;
    for (const k of SCORE_KEYS) this.svg.dataset["target" + k[0].toUpperCase() + k.slice(1)] = this.target[k].toFixed(3);
  }

  express(scores) {
    if (!scores) return;
    if (this.idle === null) {
      this.pending = scores; // shown once the idle state is known (setIdle)
      return;
    }
    this.moveTo({ eyes: +scores.eyes, mouth: +scores.mouth, pose: +scores.pose }, EASE_MS, "react");
    this.nextBlink = performance.now() + EASE_MS + 400 + Math.random() * 1200;
  }

  step(now) {
    if (this.phase === "react" || this.phase === "return") {
      const u = clamp((now - this.start) / this.duration, 0, 1);
      const e = cosineEase(u);
      for (const k of SCORE_KEYS) this.current[k] = this.from[k] + (this.target[k] - this.from[k]) * e;
      if (u >= 1) {
        if (this.phase === "react") {
          this.phase = "hold";
          this.holdUntil = now + HOLD_MS;
        } else {
          this.phase = "idle";
        }
      }
    } else if (this.phase === "hold" && now >= this.holdUntil) {
      this.moveTo(this.idle, RETURN_MS, "return");
    }
  }

  idleMotion(now) {
    // Small, slow, never-repeating sway (sums of sines with random phases).
    if (this.calm) return { eyes: 0, mouth: 0, pose: 0, breath: 0 };
    const t = now / 1000, s = this.seed;
    return {
      eyes: 0.03 * Math.sin(0.9 * t + s[0]),
      mouth: 0.03 * Math.sin(0.7 * t + s[1]),
      pose: 0.05 * Math.sin(0.45 * t + s[2]) + 0.025 * Math.sin(1.3 * t + s[3]),
      breath: Math.sin(1.6 * t),
    };
  }

  blinkFactor(now) {
    if (this.blinkStart < 0 && now >= this.nextBlink) this.blinkStart = now;
    if (this.blinkStart < 0) return 1;
    const u = (now - this.blinkStart) / 170;
    if (u >= 1) {
      this.blinkStart = -1;
      // now and then a double blink, like people do
      this.nextBlink = now + (Math.random() < 0.15 ? 180 : 2400 + Math.random() * 3600);
      return 1;
    }
    return 1 - 0.92 * Math.sin(Math.PI * u);
  }

  render(shown, blink, breath) {
    const open = eyeOpen(shown.eyes) * blink;
    for (const g of this.el.eyeballs) g.setAttribute("transform", `translate(0 ${EYE_CY}) scale(1 ${open.toFixed(4)}) translate(0 ${-EYE_CY})`);
    // The lash line rides the top of the eye: its ends stay at the corners, its middle
    // follows the lid, so a blink ends in a closed-eye arc.
    const top = EYE_CY - EYE_RY * open - 1;
    for (const l of this.el.lashes) {
      const [x0, y0, cx, x1, y1] = ["x0", "y0", "cx", "x1", "y1"].map((k) => +l.dataset[k]);
      const c = (4 * top - y0 - y1) / 2;
      l.setAttribute("d", `M${x0} ${y0} Q${cx} ${c.toFixed(2)} ${x1} ${y1}`);
    }
    const browLift = (eyeOpen(shown.eyes) - 0.65) * 8;
    for (const b of this.el.brows) b.setAttribute("transform", `translate(0 ${(-browLift).toFixed(3)})`);

    const a = mouthOpen(shown.mouth);
    const hw = 14 + 3 * a;
    const up = 165 - 3 * a, low = 166 + 20 * a;
    this.el.mouth.setAttribute(
      "d",
      `M${(120 - hw).toFixed(2)} ${MOUTH_Y} Q120 ${up.toFixed(2)} ${(120 + hw).toFixed(2)} ${MOUTH_Y} Q120 ${low.toFixed(2)} ${(120 - hw).toFixed(2)} ${MOUTH_Y} Z`
    );

    this.el.head.setAttribute("transform", `rotate(${headAngle(shown.pose).toFixed(3)} 120 200)`);
    this.el.face.setAttribute("transform", `translate(${faceShift(shown.pose).toFixed(3)} 0)`);
    this.el.hairFront.setAttribute("transform", `translate(${(faceShift(shown.pose) * 0.35).toFixed(3)} 0)`);
    this.el.body.setAttribute("transform", `translate(0 ${(1.2 * breath).toFixed(3)})`);
  }

  frame(now) {
    this.lastFrame = now;
    this.step(now);
    const m = this.idleMotion(now);
    const shown = {
      eyes: this.current.eyes + m.eyes,
      mouth: this.current.mouth + m.mouth,
      pose: this.current.pose + m.pose,
    };
    const blink = this.blinkFactor(now);
    this.render(shown, blink, m.breath);
    const d = this.svg.dataset;
    d.eyes = shown.eyes.toFixed(3);
    d.mouth = shown.mouth.toFixed(3);
    d.pose = shown.pose.toFixed(3);
    d.blink = blink < 1 ? "1" : "0";
    d.phase = this.phase;
    requestAnimationFrame((t) => this.frame(t));
  }
}

// ---------------------------------------------------------------------------
// API
// ---------------------------------------------------------------------------
async function api(method, path, body) {
  const opts = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let data = null;
  try {
    data = await r.json();
  } catch (_) {
    /* not JSON */
  }
  if (!r.ok) {
    const err = new Error((data && data.detail) || `서버 오류 (HTTP ${r.status})`);
    err.status = r.status;
    throw err;
  }
  return data;
}

const seg = (s) => encodeURIComponent(s);

// ---------------------------------------------------------------------------
// Page
// ---------------------------------------------------------------------------
const USER_RE = /^[A-Za-z0-9가-힣][A-Za-z0-9가-힣_.\-]{0,31}$/; // same rule as the API
const USER_KEY = "ohlora.user";
const $ = (id) => document.getElementById(id);

function newGuestId() {
  const n = Math.floor(Math.random() * 1e6).toString().padStart(6, "0");
  return `손님-${n}`;
}

function loadUser() {
  let u = null;
  try {
    u = localStorage.getItem(USER_KEY);
  } catch (_) {
    /* storage blocked: a fresh guest each visit */
  }
  if (!u || !USER_RE.test(u)) u = newGuestId();
  return u;
}

function saveUser(u) {
  try {
    localStorage.setItem(USER_KEY, u);
  } catch (_) {
    /* ignore */
  }
}

class Page {
  constructor() {
    this.avatar = new Avatar($("avatar"));
    this.user = loadUser();
    saveUser(this.user);
    this.busy = false;
    $("name-input").value = this.user;
    $("name-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.changeUser($("name-input").value);
    });
    $("chat-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.send();
    });
    $("reset-btn").addEventListener("click", () => this.resetSummary());
    this.greet();
    this.refresh();
    this.loadIdle();
  }

  // The avatar's idle scores from the server. On failure (server restarting, a proxy
  // hiccup) retry with a growing pause, capped at 5 s: meanwhile the avatar stays still
  // and neutral (see Avatar), and chat works as usual.
  async loadIdle(attempt = 0) {
    try {
      const r = await api("GET", "/api/avatar");
      this.avatar.setIdle(r.idle);
    } catch (_) {
      const pause = Math.min(5000, 500 * 2 ** attempt);
      setTimeout(() => this.loadIdle(attempt + 1), pause);
    }
  }

  greet() {
    this.addMessage("bot", `안녕, ${this.user}! 나는 오로라야. 오늘 하루 어땠어? 😊`, ["greeting"]);
  }

  addMessage(role, text, classes = []) {
    const li = document.createElement("li");
    li.className = ["msg", role, ...classes].join(" ");
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "나" : role === "bot" ? "오로라" : "알림";
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text; // never innerHTML: answers and names are untrusted text
    li.append(who, body);
    $("messages").append(li);
    li.scrollIntoView({ block: "end", behavior: "smooth" });
    return li;
  }

  addChip(li, text, cls) {
    const c = document.createElement("span");
    c.className = `chip ${cls}`;
    c.textContent = text;
    li.append(document.createElement("br"), c);
  }

  showError(msg) {
    const p = $("chat-error");
    p.textContent = msg;
    p.hidden = !msg;
  }

  changeUser(raw) {
    const u = (raw || "").normalize("NFC").trim();
    const input = $("name-input");
    if (!USER_RE.test(u)) {
      input.setAttribute("aria-invalid", "true");
      $("name-help").textContent = "이름은 영문·숫자·한글로 시작하고, _ . - 포함 32자까지예요.";
      return;
    }
    input.removeAttribute("aria-invalid");
    $("name-help").textContent = "영문·숫자·한글, _ . - 포함 32자까지";
    if (u === this.user) return;
    this.user = u;
    saveUser(u);
    input.value = u;
    $("messages").replaceChildren();
    this.greet();
    this.refresh();
  }

  async send() {
    const input = $("message-input");
    const text = input.value;
    if (this.busy) return;
    this.busy = true;
    $("send-btn").disabled = true;
    $("typing").hidden = false;
    this.showError("");
    this.addMessage("user", text || " ");
    input.value = "";
    try {
      const r = await api("POST", "/api/chat", { user: this.user, message: text });
      const li = this.addMessage("bot", r.answer, r.refused ? ["refused"] : []);
      if (r.memory_used) this.addChip(li, `떠올린 기억 ${r.memory_used}`, "used");
      if (r.memory_saved) this.addChip(li, `기억했어 ${r.memory_saved}`, "saved");
      if (r.expression) $("expression-label").textContent = `눈 ${r.expression.eyes} · 입 ${r.expression.mouth} · 고개 ${r.expression.pose}`;
      this.avatar.express(r.scores);
      this.setSummary(r.summary);
      await this.loadMemory();
    } catch (e) {
      this.addMessage("error", e.message, []);
    } finally {
      this.busy = false;
      $("send-btn").disabled = false;
      $("typing").hidden = true;
      input.focus();
    }
  }

  setSummary(text) {
    $("summary").textContent = text || "아직 요약이 없어요.";
  }

  async refresh() {
    await Promise.all([this.loadMemory(), this.loadSummary()]);
  }

  async loadSummary() {
    try {
      const r = await api("GET", `/api/summary/${seg(this.user)}`);
      this.setSummary(r.summary);
    } catch (e) {
      this.showError(e.message);
    }
  }

  async resetSummary() {
    try {
      const r = await api("DELETE", `/api/summary/${seg(this.user)}`);
      this.setSummary(r.summary);
      this.addMessage("bot", "좋아, 새로운 이야기 해 보자! 무슨 얘기 할까?", ["greeting"]);
    } catch (e) {
      this.showError(e.message);
    }
  }

  async loadMemory() {
    const user = this.user;
    let items = [];
    try {
      items = (await api("GET", `/api/memory/${seg(user)}`)).items;
    } catch (e) {
      this.showError(e.message);
      return;
    }
    if (user !== this.user) return; // the name changed meanwhile
    const list = $("memory-list");
    list.replaceChildren(
      ...items.map((it) => {
        const li = document.createElement("li");
        li.dataset.key = it.key;
        li.dataset.text = it.text;
        const label = document.createElement("span");
        const k = document.createElement("span");
        k.className = "mem-key";
        k.textContent = it.key;
        const v = document.createElement("span");
        v.className = "mem-value";
        v.textContent = it.value;
        label.append(k, v);
        const del = document.createElement("button");
        del.type = "button";
        del.textContent = "삭제";
        del.setAttribute("aria-label", `'${it.key}' 기억 삭제`);
        del.addEventListener("click", () => this.forget(it.key, del));
        li.append(label, del);
        return li;
      })
    );
    $("memory-empty").hidden = items.length > 0;
  }

  async forget(key, button) {
    button.disabled = true;
    try {
      await api("DELETE", `/api/memory/${seg(this.user)}/${seg(key)}`);
    } catch (e) {
      if (e.status !== 404) this.showError(e.message); // 404: already gone
    }
    await this.loadMemory();
  }
}

window.addEventListener("DOMContentLoaded", () => {
  window.ohloraPage = new Page();
});
