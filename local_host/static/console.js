// Local chat console. Plain JS, no dependencies: it must work offline.
// The page never talks to the bot directly: the console backend signs Meta-shaped webhook POSTs,
// and the bot's replies are what the fake Graph API recorded.
"use strict";

const POLL_MS = 500;
const STORAGE_KEY = "consola.usuarios";
const DEFAULT_USER = { user: "5215512345678", name: "Ana López" };
const OUTBOX_STATES = ["pendiente", "procesando", "enviado", "error", "incierto"];

const $ = (id) => document.getElementById(id);
let current = null; // {user, name}
let users = loadUsers();
let lastThreadSig = "";
let lastStateSig = "";
let polling = false;
let config = null;

function loadUsers() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "[]");
    if (Array.isArray(saved) && saved.length) return saved;
  } catch (_) { /* a broken entry is replaced below */ }
  return [DEFAULT_USER];
}

function saveUsers() {
  localStorage.setItem(STORAGE_KEY, JSON.stringify(users));
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

function time(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString("es-MX", { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function shortId(wamid) {
  return wamid ? wamid.slice(0, 10) + "…" + wamid.slice(-5) : "";
}

function ago(ms, now) {
  if (!ms) return "nunca";
  const s = Math.round((now - ms) / 100) / 10;
  return s >= 0 ? `hace ${s} s` : `en ${-s} s`;
}

// ---------------------------------------------------------------------------------------------
// conversations

function selectUser(user, name) {
  const known = users.find((u) => u.user === user);
  if (!known) users.unshift({ user, name: name || "" });
  else if (name) known.name = name;
  saveUsers();
  current = users.find((u) => u.user === user);
  lastThreadSig = "";
  lastStateSig = "";
  openReportNumber = null;
  $("report-panel").hidden = true;
  lastEvidenceSig = "";
  rendered.clear();
  $("chat-title").textContent = current.name ? `${current.name} · ${current.user}` : current.user;
  $("avatar").textContent = (current.name || current.user).trim().charAt(0).toUpperCase();
  $("chat-sub").textContent = /^[A-Z]{2}\./.test(user)
    ? "usuario sin número (solo BSUID): las respuestas van con \"recipient\""
    : "teléfono + BSUID, como manda Meta desde 2026";
  $("thread").replaceChildren(el("div", { class: "empty", text: "Cargando…" }));
  renderUsers();
  poll();
  $("message-input").focus();
}

function renderUsers(fromServer) {
  if (fromServer) {
    for (const row of fromServer) {
      const known = users.find((u) => u.user === row.user);
      if (known) known.estado = row.estado;
      else users.push({ user: row.user, name: row.name || "", estado: row.estado });
    }
  }
  $("user-list").replaceChildren(...users.map((u) => el("li", {
    class: current && u.user === current.user ? "active" : "",
    "data-user": u.user,
    onclick: () => selectUser(u.user),
  }, el("div", { class: "key", text: u.user }),
  el("div", { class: "meta", text: [u.name, u.estado].filter(Boolean).join(" · ") || "sin sesión" }))));
}

// The list's state for the open conversation follows the 0.5 s poll, not only the 5 s list refresh.
function refreshCurrentUserState(user, state) {
  const known = users.find((u) => u.user === user);
  const estado = state && state.session ? state.session.estado : null;
  if (!known || known.estado === estado) return;
  known.estado = estado;
  renderUsers();
}

async function refreshUsers() {
  try {
    renderUsers(await api("/_console/api/conversations"));
  } catch (_) { /* the poll status line reports database trouble */ }
}

// ---------------------------------------------------------------------------------------------
// thread

function userBubble(item) {
  const tags = [];
  if (item.redelivery) tags.push(el("span", { class: "tag", text: "reentrega: mismo wamid y firma" }));
  if (item.burst) tags.push(el("span", { class: "tag", text: "ráfaga" }));
  if (item.kind !== "text") tags.push(el("span", { class: "tag", text: item.kind }));
  let status;
  if (item.error) status = el("span", { class: "tag bad", title: item.error, text: "✗ sin respuesta del webhook" });
  else if (item.status === null) status = el("span", { class: "tag", text: "enviando…" });
  else if (item.status >= 200 && item.status < 300) status = el("span", { class: "tag", text: `✓ ${item.status} · ${item.ack_ms} ms` });
  else status = el("span", { class: "tag bad", text: `✗ HTTP ${item.status}` });
  return el("div", {
    class: "msg user" + (item.redelivery ? " redelivery" : ""),
    "data-wamid": item.wamid,
    "data-redelivery": item.redelivery ? "1" : "0",
    "data-burst": item.burst ? "1" : "0",
    "data-status": item.status === null ? "" : item.status,
  }, item.text, el("div", { class: "meta" }, ...tags,
    el("span", { class: "wamid", title: item.wamid, text: shortId(item.wamid) }), status,
    el("span", { text: time(item.at) })));
}

// WhatsApp's own markup: *negrita*, _cursiva_, ~tachado~ (built as DOM nodes, never as HTML).
const MARKUP = /(\*[^*\n]+\*|_[^_\n]+_|~[^~\n]+~)/;
const MARKUP_TAG = { "*": "strong", "_": "em", "~": "s" };

function formatted(text) {
  return text.split(MARKUP).filter(Boolean).map((part) => {
    const tag = part.length > 2 && MARKUP_TAG[part[0]] && part[0] === part[part.length - 1] ? MARKUP_TAG[part[0]] : null;
    return tag ? el(tag, { text: part.slice(1, -1) }) : document.createTextNode(part);
  });
}

function disableChoices(ev) {
  const box = ev.currentTarget.closest(".choices");
  if (box) for (const b of box.querySelectorAll("button.choice")) b.disabled = true;
}

function sendReply(reply) {
  sendMessage({ reply });
}

function botBubble(item, origins) {
  const p = item.payload || {};
  const choices = [];
  let text;
  if (p.type === "text") {
    text = (p.text || {}).body || "";
  } else if (p.type === "interactive") {
    const inter = p.interactive || {};
    text = (inter.body || {}).text || "";
    const action = inter.action || {};
    for (const b of action.buttons || []) {
      const r = b.reply || {};
      choices.push(el("button", {
        type: "button", class: "choice", "data-choice-id": r.id,
        onclick: (ev) => { disableChoices(ev); sendReply({ type: "button_reply", id: r.id, title: r.title, context: item.wamid }); },
      }, r.title));
    }
    if (action.sections) {
      choices.push(el("div", { class: "list-title", text: "☰ " + (action.button || "Opciones") }));
      for (const section of action.sections) {
        for (const r of section.rows || []) {
          choices.push(el("button", {
            type: "button", class: "choice row", "data-choice-id": r.id,
            onclick: (ev) => { disableChoices(ev); sendReply({
              type: "list_reply", id: r.id, title: r.title, description: r.description || "", context: item.wamid,
            }); },
          }, r.title, r.description ? el("span", { class: "desc", text: r.description }) : null));
        }
      }
    }
  } else {
    text = JSON.stringify(p, null, 1);
  }
  return el("div", {
    class: "msg bot", "data-wamid": item.wamid, "data-origin": origins[item.wamid] || "",
    "data-type": p.type === "interactive" ? (p.interactive || {}).type : p.type,
  }, el("span", { class: "body" }, ...formatted(text)), choices.length ? el("div", { class: "choices" }, ...choices) : null,
  el("div", { class: "meta" },
    origins[item.wamid] ? el("span", { class: "tag", title: origins[item.wamid], text: "responde a " + shortId(origins[item.wamid]) }) : null,
    el("span", { text: time(item.at) })));
}

// Bubbles are kept by identity and only rebuilt when their content changes, so a click (or a test's
// element reference) is never lost to the 0.5 s poll.
const rendered = new Map(); // item key -> {sig, node}

function itemKey(item) {
  return item.side === "user" ? "u" + item.seq : "b" + item.wamid;
}

function renderThread(thread, state) {
  const origins = {};
  for (const row of state.outbox_recent || []) {
    if (row.wamid_enviado && row.message_id_origen) origins[row.wamid_enviado] = row.message_id_origen;
  }
  const sig = JSON.stringify([thread, origins]);
  if (sig === lastThreadSig) return;
  lastThreadSig = sig;
  const box = $("thread");
  if (!thread.length) {
    rendered.clear();
    const hint = config && !config.fake_graph
      ? "Escribe un mensaje. (Las respuestas no se ven aquí: WHATSAPP_API_BASE_URL no apunta a /_fake_graph de este host.)"
      : "Escribe un mensaje, p. ej. «Hola, el refrigerador no enfría».";
    box.replaceChildren(el("div", { class: "empty", text: hint }));
    return;
  }
  const keep = new Set();
  const nodes = thread.map((item) => {
    const key = itemKey(item);
    keep.add(key);
    const itemSig = JSON.stringify([item, item.side === "bot" ? origins[item.wamid] || "" : ""]);
    const old = rendered.get(key);
    if (old && old.sig === itemSig) return old.node;
    const node = item.side === "user" ? userBubble(item) : botBubble(item, origins);
    if (old) old.node.replaceWith(node);
    rendered.set(key, { sig: itemSig, node });
    return node;
  });
  for (const key of [...rendered.keys()]) if (!keep.has(key)) rendered.delete(key);
  // A bot message the user already answered (anything the user sent after it) keeps its buttons
  // visible but disabled: pressing "Sí" on an old question would answer the current one.
  let answered = false;
  for (let i = thread.length - 1; i >= 0; i--) {
    if (thread[i].side === "user") { answered = true; continue; }
    for (const b of nodes[i].querySelectorAll("button.choice")) b.disabled = answered;
  }
  const existing = [...box.children];
  const same = existing.length === nodes.length && nodes.every((n, i) => existing[i] === n);
  if (!same) {
    const grew = nodes.length > existing.length;
    box.replaceChildren(...nodes);
    if (grew) box.scrollTop = box.scrollHeight;
  }
}

// ---------------------------------------------------------------------------------------------
// state panel

function dl(pairs) {
  return el("dl", {}, ...pairs.flatMap(([k, v, field]) => [el("dt", { text: k }), el("dd", { "data-field": field }, v)]));
}

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((c) => (c instanceof Node ? el("td", {}, c) : el("td", { text: c ?? "" })))))));
}

function estado(value) {
  return el("span", { class: "estado-" + value, text: value });
}

function renderQueue(q) {
  if (!q) {
    $("st-queue").replaceChildren(el("p", { class: "none", text: "Sin cola en proceso." }));
    return;
  }
  $("st-queue").replaceChildren(el("div", { class: "chips" },
    el("span", { class: "chip" + (q.depth ? " nonzero" : ""), "data-queue": "depth", "data-count": q.depth, text: `en espera: ${q.depth}` }),
    el("span", { class: "chip" + (q.in_flight ? " nonzero" : ""), "data-queue": "in_flight", "data-count": q.in_flight, text: `en proceso: ${q.in_flight}` }),
    el("span", { class: "chip" + (q.poison ? " nonzero warn" : ""), "data-queue": "poison", "data-count": q.poison, text: `poison: ${q.poison}` })));
}

function renderState(s, now) {
  const sig = JSON.stringify(s);
  if (sig === lastStateSig) {
    updateLeaseClock(s, now);
    return;
  }
  lastStateSig = sig;

  if (s.session) {
    let datos = s.session.datos_temp;
    try { datos = JSON.stringify(JSON.parse(datos), null, 1); } catch (_) { /* shown as stored */ }
    $("st-session").replaceChildren(dl([
      ["Estado", s.session.estado, "estado"],
      ["Version", String(s.session.version), "version"],
      ["UltimaActividad", el("span", { "data-ms": s.session.ultima_actividad, class: "ago", text: ago(s.session.ultima_actividad, now) }), "ultima_actividad"],
      ["DatosTemp", el("pre", { text: datos }), "datos_temp"],
    ]));
  } else {
    $("st-session").replaceChildren(el("p", { class: "none", text: "Sin sesión todavía (se crea con el primer mensaje procesado)." }));
  }

  if (s.leases.length) {
    $("st-lease").replaceChildren(...s.leases.map((l) => dl([
      ["Clave", l.clave, "clave"],
      ["Propietario", l.propietario || "—", "propietario"],
      ["Token", String(l.token), "token"],
      ["ExpiraEn", el("span", { class: "lease-clock", "data-expira": l.expira_en }), "expira_en"],
    ])));
    updateLeaseClock(s, now);
  } else {
    $("st-lease").replaceChildren(el("p", { class: "none", text: "Libre: nadie ha tomado esta conversación." }));
  }

  const inbox = [];
  inbox.push(el("div", { class: "sub", text: `Pendientes o con error: ${s.inbox_open.length}` }));
  if (s.inbox_open.length) {
    inbox.push(table(["wamid", "Tipo", "Estado", "Reintentos", "Intentos", "UltimoError"],
      s.inbox_open.map((r) => [el("span", { title: r.message_id, text: shortId(r.message_id) }), r.tipo, estado(r.estado), String(r.reintentos), String(r.intentos), r.ultimo_error || ""])));
  }
  inbox.push(el("div", { class: "sub", text: "Últimos recibidos (Reintentos > 0 = entregas repetidas de Meta)" }));
  inbox.push(s.inbox_recent.length
    ? table(["wamid", "Estado", "Reintentos", "WaTimestamp", "Procesado"],
      s.inbox_recent.map((r) => [el("span", { title: r.message_id, "data-inbox-wamid": r.message_id, "data-reintentos": r.reintentos, text: shortId(r.message_id) }),
        estado(r.estado), String(r.reintentos), time(r.wa_timestamp), r.procesado_en ? ago(r.procesado_en, now) : "—"]))
    : el("p", { class: "none", text: "Nada recibido todavía." }));
  $("st-inbox").replaceChildren(...inbox);

  const chips = OUTBOX_STATES.map((st) => {
    const n = s.outbox_counts[st] || 0;
    return el("span", {
      class: "chip" + (n ? " nonzero" : "") + (st === "error" || st === "incierto" ? " warn" : ""),
      "data-outbox-estado": st, "data-count": n, text: `${st}: ${n}`,
    });
  });
  $("st-outbox").replaceChildren(el("div", { class: "chips" }, ...chips),
    s.outbox_recent.length
      ? table(["Id", "Tipo", "Estado", "Intentos", "WamidEnviado", "UltimoError"],
        s.outbox_recent.map((r) => [String(r.id), r.tipo, estado(r.estado), String(r.intentos), el("span", { title: r.wamid_enviado || "", text: shortId(r.wamid_enviado) }), r.ultimo_error || ""]))
      : el("p", { class: "none", text: "Ningún envío para esta conversación." }));

  $("st-reports").replaceChildren(s.reports.length
    ? table(["Numero", "Estado", "TipoEquipo", "Descripcion"], s.reports.map((r) => [
      el("strong", { "data-report": r.numero, title: "Ver historial y cambiar estado", onclick: () => openReport(r.numero), text: r.numero }),
      el("span", { "data-report-estado": r.numero, text: r.estado }), r.tipo_equipo, r.descripcion]))
    : el("p", { class: "none", text: "Ningún reporte de esta conversación." }));
  $("handover-tools").hidden = !(s.session && s.session.estado === "ATENCION_HUMANA");
  if (openReportNumber) loadReport(openReportNumber);
}

// ---------------------------------------------------------------------------------------------
// maintenance: a report's status and history, releasing a handover (the same actions as the HTTP API)

let openReportNumber = null;

function openReport(numero) {
  openReportNumber = numero;
  $("report-status").textContent = "";
  $("report-panel").hidden = false;
  loadReport(numero);
}

async function loadReport(numero) {
  try {
    const r = await api("/_console/api/report?numero=" + encodeURIComponent(numero));
    if (openReportNumber !== numero) return;
    $("report-detail").replaceChildren(
      dl([
        ["Numero", r.numero, "numero"],
        ["Estado", r.estado, "report_estado"],
        ["Equipo", r.equipo + (r.ubicacion ? ` · ${r.ubicacion}` : ""), "equipo"],
        ["UltimaNota", r.ultima_nota || "—", "ultima_nota"],
        ["Evidencias", String(r.evidencias), "evidencias"],
      ]),
      el("div", { class: "sub", text: "Historial (HistorialReportes)" }),
      el("ol", { id: "report-history" }, ...r.historial.map((h) => el("li", { "data-historial": h.estado },
        `${h.creado} · ${h.estado_anterior ? h.estado_anterior + " → " : ""}${h.estado} · ${h.origen}${h.nota ? " · " + h.nota : ""}`))));
  } catch (err) {
    $("report-detail").replaceChildren(el("p", { class: "none", text: err.message }));
  }
}

$("report-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!openReportNumber) return;
  const nota = $("report-nota").value.trim();
  try {
    const r = await api("/_console/api/report/status", { numero: openReportNumber, estado: $("report-estado").value, ...(nota ? { nota } : {}) });
    $("report-nota").value = "";
    $("report-status").textContent = `${r.numero}: ${r.estado} (se avisó a quien reportó)`;
    $("report-status").style.color = "";
  } catch (err) {
    $("report-status").textContent = err.message;
    $("report-status").style.color = "var(--error)";
  }
  if (openReportNumber) loadReport(openReportNumber);
  poll();
});

$("release-btn").addEventListener("click", async () => {
  if (!current) return;
  try {
    await api("/_console/api/release", { user: current.user });
    $("release-status").textContent = "Conversación liberada: el bot vuelve a responder.";
  } catch (err) {
    $("release-status").textContent = err.message;
  }
  poll();
});

let lastEvidenceSig = "";

function renderEvidence(rows) {
  const sig = JSON.stringify(rows);
  if (sig === lastEvidenceSig) return;
  lastEvidenceSig = sig;
  $("st-evidence").replaceChildren(rows.length
    ? table(["wamid", "Tipo", "Estado", "Intentos", "Bytes", "Reporte", "Transcripción / error"],
      rows.map((r) => [el("span", { title: r.ruta || r.message_id, "data-evidence-wamid": r.message_id, "data-estado": r.estado, text: shortId(r.message_id) }),
        r.tipo, estado(r.estado), String(r.intentos), r.tamano === null ? "—" : String(r.tamano),
        r.reporte_id === null ? "—" : String(r.reporte_id), r.transcripcion || r.ultimo_error || ""]))
    : el("p", { class: "none", text: "Ninguna foto, nota de voz ni documento guardado de esta conversación." }));
}

function updateLeaseClock(s, now) {
  for (const span of document.querySelectorAll(".lease-clock")) {
    const exp = Number(span.dataset.expira);
    const live = exp > now;
    span.className = "lease-clock " + (live ? "live" : "expired");
    if (live) span.textContent = `activo, vence en ${((exp - now) / 1000).toFixed(1)} s`;
    else span.textContent = exp > 0 ? `libre (venció ${ago(exp, now)})` : "libre (liberado)";
  }
  for (const span of document.querySelectorAll("#st-session .ago")) span.textContent = ago(Number(span.dataset.ms), now);
}

// ---------------------------------------------------------------------------------------------
// polling and actions

async function poll() {
  if (polling || !current) return;
  polling = true;
  const user = current.user;
  try {
    const data = await api("/_console/api/state?user=" + encodeURIComponent(user));
    if (current && current.user === user) {
      renderThread(data.thread, data.state);
      renderState(data.state, data.now_ms);
      renderQueue(data.queue);
      renderEvidence(data.evidence || []);
      refreshCurrentUserState(user, data.state);
      $("poll-status").className = "poll-status";
      $("poll-status").textContent = "Actualizado " + new Date().toLocaleTimeString("es-MX") + " (cada 0.5 s)";
    }
  } catch (err) {
    $("poll-status").className = "poll-status bad";
    $("poll-status").textContent = "No se pudo leer el estado: " + err.message;
  } finally {
    polling = false;
  }
}

function status(text, bad) {
  const node = $("tool-status");
  node.textContent = text;
  node.style.color = bad ? "var(--error)" : "";
}

async function sendMessage(extra) {
  if (!current) return;
  try {
    const d = await api("/_console/api/send", { user: current.user, name: current.name || "", ...extra });
    status(d.error ? "El webhook no respondió: " + d.error : `Entregado ${shortId(d.wamid)} → HTTP ${d.status}`, !!d.error || d.status >= 300);
  } catch (err) {
    status(err.message, true);
  }
  poll();
}

$("composer").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = $("message-input");
  const text = input.value;
  if (!text.trim()) return;
  input.value = "";
  sendMessage({ text });
});

$("resend-btn").addEventListener("click", async () => {
  if (!current) return;
  try {
    const d = await api("/_console/api/resend", { user: current.user });
    status(`Reentregado ${shortId(d.wamid)} (mismo wamid) → HTTP ${d.status ?? "sin respuesta"}`, !!d.error);
  } catch (err) {
    status(err.message, true);
  }
  poll();
});

$("burst-btn").addEventListener("click", async () => {
  if (!current) return;
  const input = $("message-input");
  const text = input.value.trim();
  input.value = "";
  try {
    const ds = await api("/_console/api/burst", { user: current.user, name: current.name || "", text, count: 5 });
    status(`Ráfaga: ${ds.length} mensajes → HTTP ${ds.map((d) => d.status ?? "✗").join(", ")}`, ds.some((d) => d.error));
  } catch (err) {
    status(err.message, true);
  }
  poll();
});

async function sendMedia(path, body, label) {
  if (!current) return;
  try {
    const d = await api(path, { user: current.user, name: current.name || "", ...body });
    status(d.error ? "El webhook no respondió: " + d.error : `${label} ${shortId(d.wamid)} → HTTP ${d.status}`, !!d.error || d.status >= 300);
  } catch (err) {
    status(err.message, true);
  }
  poll();
}

function takeInput() {
  const input = $("message-input");
  const text = input.value.trim();
  input.value = "";
  return text;
}

$("photo-btn").addEventListener("click", () => sendMedia("/_console/api/media", { kind: "image", caption: takeInput() }, "Foto"));

$("voice-btn").addEventListener("click", () => sendMedia("/_console/api/media", { kind: "audio", spoken: takeInput() }, "Nota de voz"));

$("location-btn").addEventListener("click", () => {
  const text = takeInput();
  const m = text.match(/^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$/);
  const where = m ? { latitude: Number(m[1]), longitude: Number(m[2]) }
    : { latitude: 25.6866, longitude: -100.3161, label: "Tienda Centro", address: "Av. Juárez 100, Monterrey" };
  sendMedia("/_console/api/location", where, "Ubicación");
});

function kindOf(mime) {
  if (mime === "image/jpeg" || mime === "image/png") return "image";
  if (mime === "image/webp") return "sticker";
  if (mime.startsWith("audio/")) return "audio";
  if (mime === "video/mp4" || mime === "video/3gpp") return "video";
  return "document";
}

$("file-input").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  ev.target.value = "";
  if (!file) return;
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  const mime = file.type || "application/octet-stream";
  sendMedia("/_console/api/media", {
    kind: kindOf(mime), data: btoa(binary), mime_type: mime, filename: file.name, caption: takeInput(),
  }, file.name);
});

$("fail-btn").addEventListener("click", async () => {
  try {
    await api("/_fake_graph/_fail", { status: 429, code: 130429, count: 1, message: "(#130429) Rate limit hit" });
    $("graph-status").textContent = "El próximo envío fallará con 429.";
  } catch (err) {
    $("graph-status").textContent = err.message;
  }
});

$("user-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const user = $("user-input").value.trim();
  const name = $("name-input").value.trim();
  $("user-error").textContent = "";
  try {
    const data = await api("/_console/api/state?user=" + encodeURIComponent(user));
    selectUser(data.user, name);
    $("user-input").value = "";
    $("name-input").value = "";
  } catch (err) {
    $("user-error").textContent = err.message;
  }
});

async function start() {
  try {
    config = await api("/_console/api/config");
    const node = $("config");
    if (config.fake_graph) {
      $("graph-tools").hidden = false;
      node.textContent = `webhook ${config.webhook_url} · respuestas: Graph API falsa en ${config.api_base_url} · base ${config.backend}`;
    } else {
      node.className = "config warn";
      node.textContent = `Las respuestas van a ${config.api_base_url}: la consola no puede mostrarlas (apunta WHATSAPP_API_BASE_URL a /_fake_graph de este host)`;
    }
  } catch (err) {
    $("config").textContent = "sin configuración: " + err.message;
  }
  const initial = new URLSearchParams(location.search).get("user");
  selectUser(initial || users[0].user);
  refreshUsers();
  setInterval(poll, POLL_MS);
  setInterval(refreshUsers, 5000);
}

start();
