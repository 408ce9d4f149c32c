// Phone-like chat simulator. Every action goes to /simulator/api/send, which posts real signed XML to
// the webhook; customer-service messages are polled from the mock WeChat API's record.
// All message text is put in the page with textContent, never as HTML.
"use strict";

(() => {
  const POLL_MS = 1500;
  const NEW_RESIDENT = "__new__";

  const $ = (id) => document.getElementById(id);
  const els = {
    resident: $("resident"), follow: $("follow"), scene: $("scene"), whoami: $("whoami"),
    chat: $("chat"), composer: $("composer"), voice: $("voice"), input: $("input"),
    send: $("send"), location: $("location"), menubar: $("menubar"), status: $("status"),
    mode: $("mode-badge"),
  };

  const state = {
    residents: [],          // [{openid, name, note}]
    current: null,          // openid
    logs: new Map(),        // openid -> [entry]
    cursors: new Map(),     // openid -> last mock message id seen
    voice: false,
    polling: false,
    mockAvailable: null,
  };

  // --- DOM helpers (text only) --------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function safeHref(url) {
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (_err) {
      return null;
    }
  }

  function residentName(openid) {
    const known = state.residents.find((r) => r.openid === openid);
    return known ? known.name : "新居民";
  }

  // --- rendering ----------------------------------------------------------------------------------

  function renderCard(entry) {
    const card = el("div", "card" + (entry.kind === "template" ? " template" : ""));
    if (entry.title) card.appendChild(el("div", "card-title", entry.title));
    if (entry.text) card.appendChild(el("div", "card-body", entry.text));
    const href = entry.url ? safeHref(entry.url) : null;
    if (href) {
      const link = el("a", "", "查看详情");
      link.href = href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      card.appendChild(link);
    }
    return card;
  }

  function renderEntry(entry) {
    if (entry.role === "note") {
      const note = el("div", "note");
      note.appendChild(el("span", "", entry.text));
      return note;
    }
    const row = el("div", "msg " + entry.role + (entry.kind ? " " + entry.kind : ""));
    row.appendChild(el("div", "avatar", entry.role === "me" ? residentName(state.current).slice(0, 1) : "社"));
    const stack = el("div", "stack");
    if (entry.label) stack.appendChild(el("div", "label", entry.label));
    if (entry.card) {
      stack.appendChild(renderCard(entry));
    } else {
      stack.appendChild(el("div", "bubble" + (entry.pending ? " pending" : ""), entry.text));
    }
    row.appendChild(stack);
    return row;
  }

  function render() {
    const entries = state.logs.get(state.current) || [];
    els.chat.replaceChildren(...entries.map(renderEntry));
    els.chat.scrollTop = els.chat.scrollHeight;
  }

  function push(openid, entry) {
    if (!state.logs.has(openid)) state.logs.set(openid, []);
    state.logs.get(openid).push(entry);
    if (openid === state.current) {
      els.chat.appendChild(renderEntry(entry));
      els.chat.scrollTop = els.chat.scrollHeight;
    }
    return entry;
  }

  function replaceEntry(openid, old, fresh) {
    const list = state.logs.get(openid) || [];
    const i = list.indexOf(old);
    if (i >= 0) list[i] = fresh;
    if (openid === state.current) render();
  }

  function setStatus(text) {
    els.status.textContent = text;
  }

  // --- talking to the server ----------------------------------------------------------------------

  async function api(path, options) {
    const resp = await fetch(path, options);
    let body = null;
    try {
      body = await resp.json();
    } catch (_err) {
      body = { error: "服务器返回的不是 JSON" };
    }
    if (!resp.ok) throw new Error((body && body.error) || ("HTTP " + resp.status));
    return body;
  }

  function replyEntries(result) {
    if (result.status !== 200) {
      return [{ role: "note", text: "公众号服务器返回 HTTP " + result.status + "（居民收不到回复）" }];
    }
    if (result.success || !result.reply) {
      return [{ role: "note", text: "服务器回复 success：没有被动回复，答复稍后以客服消息送达" }];
    }
    const reply = result.reply;
    if (reply.msgtype === "news") {
      return [{ role: "bot", card: true, kind: "news", title: reply.title, text: reply.description, url: reply.url }];
    }
    return [{ role: "bot", text: reply.text }];
  }

  async function send(payload, mine) {
    const openid = state.current;
    if (mine) push(openid, mine);
    const waiting = push(openid, { role: "bot", text: "…", pending: true });
    try {
      const result = await api("/simulator/api/send", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ openid, ...payload }),
      });
      const [first, ...rest] = replyEntries(result);
      replaceEntry(openid, waiting, first);
      rest.forEach((entry) => push(openid, entry));
    } catch (err) {
      replaceEntry(openid, waiting, { role: "bot", kind: "error", text: "发送失败：" + err.message });
    }
    poll();
    setTimeout(poll, 600);
  }

  function messageEntry(m) {
    if (m.kind === "template") {
      return { role: "bot", card: true, kind: "template", label: "模板消息", title: "服务通知", text: m.text };
    }
    const label = m.kind === "subscribe" ? "订阅消息" : "客服消息";
    return { role: "bot", kind: "custom", label, text: m.text || "[" + (m.msgtype || "消息") + "]" };
  }

  async function poll() {
    const openid = state.current;
    if (!openid || state.polling) return;
    state.polling = true;
    try {
      const after = state.cursors.get(openid) || 0;
      const data = await api("/simulator/api/messages?openid=" + encodeURIComponent(openid) + "&after=" + after);
      showMockStatus(data.available, data.error);
      for (const m of data.messages || []) {
        if (m.id <= (state.cursors.get(openid) || 0)) continue;
        state.cursors.set(openid, m.id);
        push(openid, messageEntry(m));
      }
    } catch (err) {
      showMockStatus(false, err.message);
    } finally {
      state.polling = false;
    }
  }

  function showMockStatus(available, error) {
    if (available === state.mockAvailable) return;
    state.mockAvailable = available;
    setStatus(available ? "客服消息通道：已连接（模拟微信接口）"
                        : "客服消息通道：未连接" + (error ? "（" + error + "）" : ""));
  }

  // --- user actions -------------------------------------------------------------------------------

  function randomOpenid() {
    const bytes = new Uint8Array(10);
    crypto.getRandomValues(bytes);
    return "oSimNew" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("") + "x";
  }

  function selectResident(value) {
    if (value === NEW_RESIDENT) {
      const openid = randomOpenid();
      const n = state.residents.filter((r) => r.openid.startsWith("oSimNew")).length + 1;
      state.residents.push({ openid, name: "新居民" + n, note: "尚未关注，可先点「关注」" });
      fillResidents();
      value = openid;
    }
    state.current = value;
    els.resident.value = value;
    const r = state.residents.find((x) => x.openid === value);
    els.whoami.textContent = (r ? r.name + (r.note ? " · " + r.note : "") + " · " : "") + "openid: " + value;
    if (!state.logs.has(value)) {
      push(value, { role: "note", text: "现在以「" + residentName(value) + "」的身份聊天" });
    }
    render();
    poll();
  }

  function fillResidents() {
    const options = state.residents.map((r) => {
      const option = el("option", "", r.name);
      option.value = r.openid;
      return option;
    });
    const fresh = el("option", "", "＋ 新居民");
    fresh.value = NEW_RESIDENT;
    els.resident.replaceChildren(...options, fresh);
  }

  function fillMenu(menu) {
    els.menubar.replaceChildren(...menu.map((item) => {
      const button = el("button", "", item.label);
      button.type = "button";
      button.dataset.key = item.key;
      button.addEventListener("click", () => {
        send({ kind: "click", key: item.key }, { role: "note", text: "点击菜单「" + item.label + "」" });
      });
      return button;
    }));
  }

  function toggleVoice() {
    state.voice = !state.voice;
    els.voice.setAttribute("aria-pressed", String(state.voice));
    els.composer.classList.toggle("voice-on", state.voice);
    els.input.placeholder = state.voice ? "识别出的文字，可留空" : "请输入文字…";
    els.send.textContent = state.voice ? "发语音" : "发送";
    els.input.focus();
  }

  function onSubmit(event) {
    event.preventDefault();
    const text = els.input.value;
    if (state.voice) {
      const shown = text.trim() ? text.trim() : "（一段没听清的语音）";
      send({ kind: "voice", text }, { role: "me", label: "语音", text: shown });
    } else {
      if (!text.trim()) return;
      send({ kind: "text", text }, { role: "me", text });
    }
    els.input.value = "";
    els.input.focus();
  }

  function sendLocation(sample) {
    send({ kind: "location", latitude: sample.latitude, longitude: sample.longitude, label: sample.label },
         { role: "me", label: "位置", text: sample.label + "\n" + sample.latitude + ", " + sample.longitude });
  }

  function follow() {
    const scene = els.scene.value.trim();
    send({ kind: "subscribe", scene }, { role: "note", text: "关注了公众号" + (scene ? "（场景 " + scene + "）" : "") });
  }

  // --- start --------------------------------------------------------------------------------------

  async function start() {
    let config;
    try {
      config = await api("/simulator/api/config");
    } catch (err) {
      setStatus("无法加载模拟器配置：" + err.message);
      return;
    }
    state.residents = config.residents.slice();
    els.mode.textContent = "沙箱 · " + ({ plain: "明文", compatible: "兼容模式", safe: "安全模式" }[config.mode] || config.mode);
    fillResidents();
    fillMenu(config.menu);
    els.resident.addEventListener("change", () => selectResident(els.resident.value));
    els.voice.addEventListener("click", toggleVoice);
    els.composer.addEventListener("submit", onSubmit);
    els.location.addEventListener("click", () => sendLocation(config.location));
    els.follow.addEventListener("click", follow);
    selectResident(state.residents[0].openid);
    setInterval(poll, POLL_MS);
    document.body.dataset.ready = "true";
  }

  start();
})();
