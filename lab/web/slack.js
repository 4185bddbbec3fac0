// The Slack emulator's page: long-polls /_web/state, sends what the visitor does to /_web/*.
// All HTML comes from the server, which escapes every value; nothing here builds markup from data.
"use strict";

(function () {
  const params = new URLSearchParams(location.search);
  const state = {
    as: params.get("as") || "",
    channel: params.get("channel") || "",
    thread: params.get("thread") || "",
    version: -1,
    channelHtml: "",
    threadHtml: "",
    modalKey: "",
    generation: 0,
  };
  const $ = (id) => document.getElementById(id);

  function saveUrl() {
    const q = new URLSearchParams();
    if (state.as) q.set("as", state.as);
    if (state.channel) q.set("channel", state.channel);
    if (state.thread) q.set("thread", state.thread);
    history.replaceState(null, "", "?" + q.toString());
  }

  function toast(text, bad) {
    const el = $("toast");
    el.textContent = text;
    el.className = bad ? "toast bad" : "toast";
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, bad ? 8000 : 3000);
  }

  async function post(name, body) {
    const resp = await fetch("/_web/" + name, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(Object.assign({ as: state.as, channel: state.channel }, body)),
    });
    let answer = {};
    try { answer = await resp.json(); } catch (e) { answer = {}; }
    if (!resp.ok) {
      toast(answer.error || ("The page's server answered " + resp.status), true);
      return null;
    }
    if (answer.status && answer.status !== 200) {
      toast("The bot answered HTTP " + answer.status + ". " + (answer.body || ""), true);
    }
    return answer;
  }

  function nearBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  }

  function setHtml(el, html, key) {
    if (state[key] === html) return;
    const stick = nearBottom(el);
    state[key] = html;
    el.innerHTML = html;
    if (stick) el.scrollTop = el.scrollHeight;
  }

  function modalValues(root) {
    const values = {};
    root.querySelectorAll("[data-block-id][data-action-id]").forEach((el) => {
      const block = el.dataset.blockId;
      const action = el.dataset.actionId;
      let value;
      if (el.dataset.type === "radio_buttons") {
        const checked = el.querySelector("input:checked");
        value = checked ? checked.value : null;
      } else if (el.dataset.type === "checkboxes") {
        value = Array.from(el.querySelectorAll("input:checked")).map((i) => i.value);
      } else {
        value = el.value;
      }
      (values[block] = values[block] || {})[action] = value;
    });
    return values;
  }

  function restoreValues(root, values) {
    root.querySelectorAll("[data-block-id][data-action-id]").forEach((el) => {
      const value = (values[el.dataset.blockId] || {})[el.dataset.actionId];
      if (value === undefined || value === null) return;
      if (el.dataset.type === "radio_buttons" || el.dataset.type === "checkboxes") {
        const wanted = Array.isArray(value) ? value : [value];
        el.querySelectorAll("input").forEach((i) => { i.checked = wanted.includes(i.value); });
      } else {
        el.value = value;
      }
    });
  }

  function render(snap) {
    state.version = snap.version;
    state.as = snap.me;
    state.channel = snap.channel;
    const select = $("as");
    if (select.options.length !== snap.visitors.length) {
      select.innerHTML = "";
      snap.visitors.forEach((v) => select.add(new Option(v.label, v.id)));
    }
    select.value = snap.me;
    $("channel-name").textContent = snap.channel_name;
    $("channel-title").textContent = snap.channel_name;
    document.body.dataset.me = snap.me;
    document.body.dataset.version = String(snap.version);
    setHtml($("messages"), snap.channel_html, "channelHtml");
    $("thread-pane").hidden = !state.thread;
    if (state.thread) setHtml($("thread"), snap.thread_html, "threadHtml");
    const layer = $("modal-layer");
    const key = snap.modal ? snap.modal.key : "";
    if (key !== state.modalKey) {
      const old = layer.querySelector(".modal");
      const sameView = old && snap.modal && key.split(":")[0] === state.modalKey.split(":")[0];
      const kept = sameView ? modalValues(old) : null;
      state.modalKey = key;
      layer.innerHTML = snap.modal ? snap.modal.html : "";
      layer.hidden = !snap.modal;
      if (kept) restoreValues(layer, kept);
      const first = layer.querySelector("input, textarea, select");
      if (first && !kept) first.focus();
    }
  }

  async function poll() {
    const generation = state.generation;
    const q = new URLSearchParams({ as: state.as, since: String(state.version) });
    if (state.channel) q.set("channel", state.channel);
    if (state.thread) q.set("thread", state.thread);
    try {
      const resp = await fetch("/_web/state?" + q.toString(), { cache: "no-store" });
      if (!resp.ok) throw new Error("state " + resp.status);
      const snap = await resp.json();
      if (generation === state.generation) render(snap);
      setTimeout(poll, 0);
    } catch (e) {
      setTimeout(poll, 1000);
    }
  }

  // Something the page itself changed (user, thread): show it now, not at the next change.
  function refresh() {
    state.generation += 1;
    state.version = -1;
    state.channelHtml = state.threadHtml = "";
    saveUrl();
    const q = new URLSearchParams({ as: state.as, since: "-1" });
    if (state.channel) q.set("channel", state.channel);
    if (state.thread) q.set("thread", state.thread);
    const generation = state.generation;
    fetch("/_web/state?" + q.toString(), { cache: "no-store" })
      .then((r) => r.json())
      .then((snap) => { if (generation === state.generation) render(snap); });
  }

  function askConfirm(spec) {
    return new Promise((resolve) => {
      $("confirm-title").textContent = spec.title;
      $("confirm-text").textContent = spec.text;
      $("confirm-ok").textContent = spec.confirm;
      $("confirm-ok").className = spec.style === "danger" ? "btn btn-danger" : "btn btn-primary";
      $("confirm-deny").textContent = spec.deny;
      const layer = $("confirm-layer");
      layer.hidden = false;
      const done = (answer) => {
        layer.hidden = true;
        $("confirm-ok").onclick = $("confirm-deny").onclick = null;
        resolve(answer);
      };
      $("confirm-ok").onclick = () => done(true);
      $("confirm-deny").onclick = () => done(false);
    });
  }

  async function clickButton(button) {
    if (button.dataset.confirm) {
      const ok = await askConfirm(JSON.parse(button.dataset.confirm));
      if (!ok) return;
    }
    button.disabled = true;
    button.classList.add("busy");
    try {
      await post("click", {
        channel: button.dataset.channel || state.channel,
        ts: button.dataset.ts || "",
        block_id: button.dataset.blockId || "",
        action_id: button.dataset.actionId || "",
        ephemeral: button.dataset.ephemeral === "1",
        view_id: button.dataset.viewId || "",
      });
    } finally {
      button.disabled = false;
      button.classList.remove("busy");
    }
  }

  document.addEventListener("click", (event) => {
    const target = event.target.closest("button");
    if (!target) return;
    if (target.dataset.thread) {
      state.thread = target.dataset.thread;
      refresh();
    } else if (target.id === "thread-close") {
      state.thread = "";
      refresh();
    } else if (target.dataset.kind === "button") {
      clickButton(target);
    } else if (target.dataset.kind === "submit") {
      const modal = target.closest(".modal");
      post("submit", { view_id: target.dataset.viewId, values: modalValues(modal) });
    } else if (target.dataset.kind === "close") {
      post("close", { view_id: target.dataset.viewId });
    }
  });

  $("as").addEventListener("change", (event) => {
    state.as = event.target.value;
    // Modals belong to one person's client: the next one's (if any) comes with the refresh.
    state.modalKey = "";
    $("modal-layer").innerHTML = "";
    $("modal-layer").hidden = true;
    refresh();
  });

  $("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("composer-text");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    await post(text.startsWith("/") ? "command" : "message", { text: text });
  });

  $("thread-composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("thread-text");
    const text = input.value.trim();
    if (!text || !state.thread) return;
    input.value = "";
    await post("message", { text: text, thread_ts: state.thread });
  });

  saveUrl();
  poll();
})();
