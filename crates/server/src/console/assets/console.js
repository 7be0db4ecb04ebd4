// The ferry console. Every page is drawn here from ferry's API (/console/api/*).
//
// Event data is hostile: this script builds the page with createElement and text nodes only,
// never innerHTML, so that any text an event carries shows as text. The admin token, when one
// is needed, lives in this tab's sessionStorage and travels only as an Authorization header.

"use strict";

const TOKEN_KEY = "ferry-admin-token";
const LIVE_ROWS = 200;

// ---- building the page -------------------------------------------------------------------

/** An element with attributes and children (strings become text nodes). */
function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "onclick" || name === "oninput" || name === "onchange" || name === "onsubmit") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "href" && !String(value).startsWith("/console")) {
      throw new Error("the console links only to its own pages");
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function clear(element) {
  while (element.firstChild) element.firstChild.remove();
  return element;
}

function time(ms) {
  if (!ms) return "";
  const date = new Date(ms);
  return date.toISOString().replace("T", " ").replace("Z", "").slice(0, 23);
}

function clock(ms) {
  return ms ? new Date(ms).toISOString().slice(11, 23) : "";
}

function pretty(value) {
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch (_) {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

function badge(status, title) {
  return h("span", { class: `badge ${status}`, title: title || null }, status);
}

function notice(text, kind) {
  const box = document.getElementById("notice");
  if (!text) {
    box.hidden = true;
    return;
  }
  clear(box).append(text);
  box.className = `notice ${kind || ""}`;
  box.hidden = false;
}

// ---- talking to ferry --------------------------------------------------------------------

function headers(extra) {
  const all = Object.assign({}, extra || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) all.Authorization = `Bearer ${token}`;
  return all;
}

async function api(path, options) {
  const init = Object.assign({}, options || {});
  init.headers = headers(init.body ? { "Content-Type": "application/json" } : {});
  init.cache = "no-store";
  const response = await fetch(path, init);
  if (response.status === 403) {
    askForToken("This server wants the admin token for the console.");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.error || `${response.status} ${response.statusText}`);
  }
  return body;
}

function post(path, body) {
  return api(path, { method: "POST", body: JSON.stringify(body) });
}

function askForToken(why) {
  const form = document.getElementById("token-form");
  form.hidden = false;
  if (why) notice(why, "error");
  document.getElementById("token-input").focus();
}

function setUpToken() {
  const form = document.getElementById("token-form");
  document.getElementById("token-button").addEventListener("click", () => {
    form.hidden = !form.hidden;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = document.getElementById("token-input").value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
}

/** Reads the live stream (server-sent events over fetch, so that it can carry the token). */
async function follow(onMessage) {
  const state = document.getElementById("live-state");
  for (;;) {
    try {
      const response = await fetch("/console/api/stream", { headers: headers(), cache: "no-store" });
      if (response.status === 403) {
        askForToken("This server wants the admin token for the console.");
        state.textContent = "needs the admin token";
        state.className = "live-state off";
        return;
      }
      if (!response.ok || !response.body) throw new Error(`${response.status}`);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffered = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffered.indexOf("\n\n")) >= 0) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          for (const line of block.split("\n")) {
            if (!line.startsWith("data: ")) continue;
            const message = JSON.parse(line.slice(6));
            if (message.kind === "hello") {
              state.textContent = "live";
              state.className = "live-state on";
            }
            onMessage(message);
          }
        }
      }
    } catch (_) {
      // Fall through and try again.
    }
    state.textContent = "reconnecting";
    state.className = "live-state off";
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// ---- charts ------------------------------------------------------------------------------

/** Draws per-second counts (oldest first) as a line, the last minutes at a glance. */
function spark(series, colour, title) {
  const canvas = h("canvas", { class: "spark", width: 360, height: 64, title });
  requestAnimationFrame(() => {
    const context = canvas.getContext("2d");
    const width = canvas.width;
    const height = canvas.height;
    const top = Math.max(1, ...series.flatMap((s) => s.values));
    context.clearRect(0, 0, width, height);
    series.forEach(({ values, colour: stroke }) => {
      context.strokeStyle = stroke;
      context.lineWidth = 2;
      context.beginPath();
      values.forEach((value, i) => {
        const x = (i / Math.max(1, values.length - 1)) * width;
        const y = height - 2 - (value / top) * (height - 6);
        if (i === 0) context.moveTo(x, y);
        else context.lineTo(x, y);
      });
      context.stroke();
    });
  });
  return canvas;
}

function perSecond(values, seconds) {
  const recent = values.slice(-seconds);
  const sum = recent.reduce((a, b) => a + b, 0);
  return (sum / Math.max(1, recent.length)).toFixed(1);
}

// ---- overview and live events ------------------------------------------------------------

async function overviewPage(page) {
  const summary = h("section", { class: "card", id: "summary" }, "Loading…");
  const problems = h("div", { id: "problems" });
  const sources = h("section", { class: "card", id: "sources" });
  const connections = h("section", { class: "card", id: "connections" });
  const liveCount = h("span", { class: "counts", id: "live-counts" });
  const rows = h("tbody", { id: "live-events" });
  append(page, [
    summary,
    problems,
    sources,
    connections,
    h("section", { class: "card" },
      h("h2", {}, "Live events", liveCount),
      h("table", {},
        h("thead", {}, h("tr", {},
          h("th", {}, "received"), h("th", {}, "event"), h("th", {}, "source"),
          h("th", {}, "type"), h("th", {}, "name"), h("th", {}, "user"),
          h("th", {}, "what became of it"))),
        rows)),
  ]);

  // The connections each source feeds, from the overview, to show events as pending for them.
  const live = { rows, counts: liveCount, unshown: 0, dropped: 0, refused: 0, connections: new Map() };
  // Subscribe first, then read what is already there: nothing falls in between.
  follow((message) => onLive(live, message));
  const refresh = async () => {
    try {
      const overview = await api("/console/api/overview");
      for (const source of overview.sources) live.connections.set(source.name, source.connections || []);
      drawOverview(overview, { summary, problems, sources, connections });
    } catch (error) {
      notice(error.message, "error");
    }
  };
  await refresh();
  try {
    const recent = await api("/console/api/events?limit=100");
    for (const event of recent.events.slice().reverse()) {
      // An event the stream already showed keeps its row.
      if (!rows.querySelector(`tr[data-id="${Number(event.id)}"]`)) showEvent(live, event, false);
    }
  } catch (error) {
    notice(error.message, "error");
  }
  setInterval(refresh, 2000);
}

function drawOverview(overview, parts) {
  const store = overview.store;
  clear(parts.summary).append(
    h("dl", { class: "facts" },
      h("div", {}, h("dt", {}, "generation"), h("dd", { id: "generation" }, overview.generation)),
      h("div", {}, h("dt", {}, "loaded"), h("dd", {}, overview.loaded_at)),
      h("div", {}, h("dt", {}, "configuration"), h("dd", {}, overview.config)),
      h("div", {}, h("dt", {}, "store"), h("dd", { id: "store" }, `${store.kind} · ${store.where}`)),
      h("div", {}, h("dt", {}, "state"), h("dd", {}, overview.ready ? "ready" : "not ready"))));

  clear(parts.problems);
  const reload = overview.last_reload;
  if (reload && !reload.ok) {
    append(parts.problems, h("section", { class: "card", id: "reload-problems" },
      h("h2", { class: "error-text" },
        `The last reload (${reload.trigger}, ${reload.at}) was refused: generation ${overview.generation} keeps serving`),
      reload.problems.map((problem) => h("pre", { class: "problem" }, problem.rendered))));
  }

  clear(parts.sources).append(h("h2", {}, "Sources"));
  const sourceRows = overview.sources.map((source) => {
    const stats = source.stats;
    const refusals = stats.refusals.map((r) =>
      h("div", { class: "reason" }, badge("refused"), `${r.count} × ${r.status}: ${r.reason}`));
    return h("tr", { "data-source": source.name },
      h("td", {}, h("strong", {}, source.name), " ", h("span", { class: "muted" }, source.kind)),
      h("td", { class: "number" }, perSecond(stats.received_per_second, 10)),
      h("td", {}, spark([
        { values: stats.received_per_second, colour: "#2457c5" },
        { values: stats.refused_per_second, colour: "#b42318" },
      ], "", "events per second (blue) and refused requests (red), last 5 minutes")),
      h("td", { class: "number" }, source.unknown ? "" : source.received),
      h("td", { class: "number" }, source.unknown ? "" : source.rejected),
      h("td", {}, refusals.length ? refusals : h("span", { class: "muted" }, "none")));
  });
  append(parts.sources, h("table", {},
    h("thead", {}, h("tr", {},
      h("th", {}, "source"), h("th", { class: "number" }, "events/s"), h("th", {}, "last 5 min"),
      h("th", { class: "number" }, "received"), h("th", { class: "number" }, "events refused"),
      h("th", {}, "requests refused, by reason"))),
    h("tbody", {}, sourceRows)));

  clear(parts.connections).append(h("h2", {}, "Connections"));
  const connectionRows = overview.connections.map((connection) => {
    const stats = connection.stats;
    const depth = connection.depth || {};
    const error = stats.last_error;
    return h("tr", { "data-connection": connection.name },
      h("td", {}, h("strong", {}, connection.name),
        h("div", { class: "muted" }, `${connection.source} → ${connection.mapping}`,
          connection.dry_run ? " · dry run" : "", connection.ordered ? " · ordered" : "")),
      h("td", { class: "number", "data-count": "delivered" }, connection.delivered),
      h("td", { class: "number", "data-count": "pending" }, depth.pending ?? ""),
      h("td", { class: "number", "data-count": "retrying" }, depth.retrying ?? ""),
      h("td", { class: "number", "data-count": "dead" },
        depth.dead ? h("a", { href: `/console/dead?connection=${encodeURIComponent(connection.name)}` }, depth.dead) : (depth.dead ?? "")),
      h("td", { class: "number" }, stats.p50_ms === null ? "" : `${stats.p50_ms} ms`),
      h("td", { class: "number" }, stats.p99_ms === null ? "" : `${stats.p99_ms} ms`),
      h("td", {}, spark([
        { values: stats.delivered_per_second, colour: "#1b7f4b" },
        { values: stats.failed_per_second, colour: "#b42318" },
      ], "", "delivered (green) and failed (red) per second, last 5 minutes")),
      h("td", {}, error
        ? h("div", { class: "reason" }, badge(error.status), clock(error.at_ms), " ",
          h("a", { href: `/console/events/${error.event}` }, `event ${error.event}`), ": ", error.reason)
        : h("span", { class: "muted" }, "none")));
  });
  append(parts.connections, h("table", {},
    h("thead", {}, h("tr", {},
      h("th", {}, "connection"), h("th", { class: "number", title: "events settled without failing: every request delivered, or nothing to send" }, "delivered"),
      h("th", { class: "number" }, "pending"), h("th", { class: "number" }, "retrying"),
      h("th", { class: "number" }, "dead"), h("th", { class: "number" }, "p50"),
      h("th", { class: "number" }, "p99"), h("th", {}, "last 5 min"), h("th", {}, "last error"))),
    h("tbody", {}, connectionRows)));
}

function fateBadges(fates) {
  return fates.map((fate) => h("div", { class: "fate", "data-connection": fate.connection, "data-status": fate.status },
    badge(fate.status, fate.reason), h("span", {}, fate.connection),
    fate.reason ? h("span", { class: "reason" }, ` ${fate.reason}`) : null));
}

/** The event's fates, with `pending` for each connection of its source not settled yet. */
function withPending(live, event) {
  const fates = (event.fates || []).slice();
  for (const connection of live.connections.get(event.source) || []) {
    if (!fates.some((fate) => fate.connection === connection)) {
      fates.push({ connection, status: "pending", reason: null });
    }
  }
  return fates;
}

function showEvent(live, event, fresh) {
  const existing = live.rows.querySelector(`tr[data-id="${Number(event.id)}"]`);
  const row = h("tr", { "data-id": Number(event.id), class: fresh ? "fresh" : null },
    h("td", {}, clock(event.at_ms)),
    h("td", {}, h("a", { href: `/console/events/${Number(event.id)}` }, `#${event.id}`)),
    h("td", { class: "event-source" }, event.source),
    h("td", { class: "event-type" }, event.type ?? ""),
    h("td", { class: "event-name" }, event.name ?? ""),
    h("td", { class: "event-user" }, event.user ?? ""),
    h("td", { class: "fates" }, fateBadges(withPending(live, event))));
  if (existing) {
    existing.replaceWith(row);
  } else {
    // Newest first, by id: rows from the stream and from the recent list interleave.
    const older = Array.from(live.rows.children).find((r) => Number(r.dataset.id) < Number(event.id));
    live.rows.insertBefore(row, older || null);
  }
  while (live.rows.children.length > LIVE_ROWS) live.rows.lastChild.remove();
}

function onLive(live, message) {
  switch (message.kind) {
    case "event":
      showEvent(live, message.event, true);
      break;
    case "fate": {
      const row = live.rows.querySelector(`tr[data-id="${Number(message.id)}"]`);
      if (!row) break;
      const cell = row.querySelector("td.fates");
      const fate = Object.assign({ connection: message.connection }, message.fate);
      const old = cell.querySelector(`div.fate[data-connection="${CSS.escape(message.connection)}"]`);
      const [shown] = fateBadges([fate]);
      if (old) old.replaceWith(shown);
      else cell.append(shown);
      break;
    }
    case "refused":
      live.refused += 1;
      break;
    case "unshown":
      live.unshown += message.count;
      break;
    case "dropped":
      live.dropped += message.count;
      break;
    default:
      break;
  }
  const parts = [];
  if (live.refused) parts.push(`${live.refused} ${live.refused === 1 ? "request" : "requests"} refused`);
  if (live.unshown) parts.push(`${live.unshown} events not shown (more than the live view's rate)`);
  if (live.dropped) parts.push(`${live.dropped} updates dropped (this page read too slowly)`);
  live.counts.textContent = parts.join(" · ");
}

// ---- one event ---------------------------------------------------------------------------

async function eventPage(page, id) {
  let event;
  try {
    event = await api(`/console/api/events/${encodeURIComponent(id)}`);
  } catch (error) {
    append(page, h("h1", {}, `Event ${id}`), h("p", { class: "error-text" }, error.message));
    return;
  }
  append(page,
    h("h1", {}, `Event #${event.id}`),
    h("section", { class: "card" },
      h("dl", { class: "facts" },
        h("div", {}, h("dt", {}, "source"), h("dd", {}, event.source)),
        h("div", {}, h("dt", {}, "received"), h("dd", {}, time(event.at_ms)))),
      h("h2", {}, "As stored"),
      h("pre", { id: "event-body" }, pretty(event.event))));
  if (!event.connections.length) {
    append(page, h("p", { class: "muted" }, "No connection is fed by this source now."));
  }
  for (const connection of event.connections) {
    append(page, connectionSection(connection));
  }
}

function connectionSection(connection) {
  const fate = connection.fate;
  const section = h("section", { class: "card connection", "data-connection": connection.name },
    h("h2", {}, connection.name, " ", h("span", { class: "muted" }, `→ ${connection.mapping}`),
      connection.dry_run ? h("span", { class: "muted" }, " · dry run") : null),
    fate
      ? h("p", {}, badge(fate.status), ` ${time(fate.at_ms)}`,
        fate.attempt ? ` · retry ${fate.attempt} from the store` : "",
        fate.took_ms !== null && fate.took_ms !== undefined ? ` · ${fate.took_ms} ms after receipt` : "",
        fate.reason ? h("div", { class: "reason" }, fate.reason) : null)
      : h("p", { class: "muted" }, "Not settled yet for this connection, or settled before this server kept it."));

  const journal = fate && fate.journal;
  if (journal && journal.exchanges.length) {
    append(section, h("h3", {}, "Requests sent, attempts and responses"));
    for (const exchange of journal.exchanges) {
      append(section, exchangeView(exchange));
    }
  } else if (fate && !journal) {
    append(section, h("p", { class: "muted" },
      "Attempts and responses are kept for the events the live view shows while a console is open."));
  }

  append(section, h("h3", {}, "What the mapping plans for it now"));
  for (const planned of connection.planned) {
    if (planned.kind === "request") {
      append(section, h("pre", { class: "planned-request" }, JSON.stringify(planned.request, null, 2)));
    } else {
      append(section, h("p", {}, badge(planned.kind), planned.action ? `${planned.action}: ` : "",
        h("span", { class: "reason" }, planned.reason)));
    }
  }
  append(section, h("h3", {}, "Trace: where every field came from"),
    h("pre", { class: "trace" }, connection.trace.join("\n") || "(nothing to explain)"));
  return section;
}

function exchangeView(exchange) {
  const request = exchange.request;
  const attempts = exchange.attempts.map((attempt, i) => h("tr", {},
    h("td", { class: "number" }, i + 1),
    h("td", {}, time(attempt.at_ms)),
    h("td", { class: "number" }, `${attempt.took_ms.toFixed(1)} ms`),
    h("td", {}, attempt.status ?? h("span", { class: "error-text" }, attempt.error || "no response"))));
  return h("div", { class: "exchange" },
    h("p", {}, h("strong", {}, exchange.step ? `${exchange.action}.${exchange.step}` : exchange.action),
      exchange.events > 1 ? ` · a batch of ${exchange.events} events` : "",
      exchange.failure ? h("div", { class: "error-text" }, exchange.failure) : null),
    h("pre", { class: "sent" },
      `${request.method} ${request.url}\n`,
      request.headers.map(([name, value]) => `${name}: ${value}\n`).join(""),
      request.body ? `\n${pretty(request.body)}` : ""),
    h("table", { class: "attempts" },
      h("thead", {}, h("tr", {}, h("th", { class: "number" }, "attempt"), h("th", {}, "sent"),
        h("th", { class: "number" }, "took"), h("th", {}, "status"))),
      h("tbody", {}, attempts)),
    exchange.response
      ? h("pre", { class: "response" }, `${exchange.response.status}\n`,
        exchange.response.headers.map(([name, value]) => `${name}: ${value}\n`).join(""),
        exchange.response.body ? `\n${pretty(exchange.response.body)}` : "")
      : null);
}

// ---- dead letters ------------------------------------------------------------------------

async function deadPage(page) {
  const query = new URLSearchParams(location.search);
  const connection = h("select", { id: "dead-connection" }, h("option", { value: "" }, "every connection"));
  const reason = h("input", { type: "text", id: "dead-reason", placeholder: "reason contains…", value: query.get("reason") || "" });
  const rows = h("tbody", { id: "dead-letters" });
  const detail = h("div", { id: "dead-detail" });
  const counts = h("span", { class: "counts", id: "dead-counts" });
  const replayAll = confirmingButton("Replay these", "replay-shown", () => act("replay"));
  const purgeAll = confirmingButton("Purge these", "purge-shown", () => act("purge"), "danger");
  append(page,
    h("h1", {}, "Dead letters", counts),
    h("div", { class: "toolbar" }, connection, reason, replayAll, purgeAll),
    h("section", { class: "card" },
      h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "id"), h("th", {}, "when"), h("th", {}, "connection"),
          h("th", {}, "source"), h("th", {}, "reason"), h("th", {}, ""))),
        rows)),
    detail);

  let shown = [];
  let known = false;
  async function load() {
    const params = new URLSearchParams();
    if (connection.value) params.set("connection", connection.value);
    if (reason.value.trim()) params.set("reason", reason.value.trim());
    let listed;
    try {
      listed = await api(`/console/api/dead?${params}`);
    } catch (error) {
      notice(error.message, "error");
      return;
    }
    if (!known) {
      for (const name of listed.connections) append(connection, h("option", { value: name }, name));
      append(connection, h("option", { value: listed.ingest }, "refused at ingest"));
      connection.value = query.get("connection") || "";
      known = true;
      if (connection.value) return load();
    }
    shown = listed.letters;
    counts.textContent = `${shown.length} shown`;
    clear(rows);
    for (const letter of shown) {
      append(rows, h("tr", { "data-id": letter.id },
        h("td", {}, letter.id),
        h("td", {}, time(letter.at_ms)),
        h("td", {}, letter.connection ?? "(ingest)"),
        h("td", {}, letter.source),
        h("td", { class: "reason" }, letter.reason),
        h("td", {},
          h("button", { type: "button", class: "small quiet", "data-action": "inspect", onclick: () => inspect(letter.id) }, "Inspect"), " ",
          letter.connection
            ? h("button", { type: "button", class: "small", "data-action": "replay", onclick: () => one("replay", letter.id) }, "Replay")
            : null, " ",
          h("button", { type: "button", class: "small danger", "data-action": "purge", onclick: () => one("purge", letter.id) }, "Purge"))));
    }
  }

  async function one(action, id) {
    try {
      const done = await post(`/console/api/dead/${action}`, { id });
      notice(action === "replay"
        ? (done.queued ? `Dead letter ${id} queued again.` : `Dead letter ${id} was not replayed: ${done.skipped.map((s) => s.reason).join("; ")}`)
        : `Dead letter ${id} purged.`);
    } catch (error) {
      notice(error.message, "error");
    }
    clear(detail);
    await load();
  }

  async function act(action) {
    const which = connection.value && connection.value !== "(ingest)"
      ? { connection: connection.value }
      : reason.value.trim() || connection.value ? null : { all: true };
    try {
      if (which) {
        const done = await post(`/console/api/dead/${action}`, which);
        notice(action === "replay" ? `${done.queued} events queued again.` : `${done.purged} dead letters purged.`);
      } else {
        // A reason filter: act on what is shown, one by one.
        let count = 0;
        for (const letter of shown) {
          if (action === "replay" && !letter.connection) continue;
          await post(`/console/api/dead/${action}`, { id: letter.id });
          count += 1;
        }
        notice(`${count} dead letters ${action === "replay" ? "queued again" : "purged"}.`);
      }
    } catch (error) {
      notice(error.message, "error");
    }
    await load();
  }

  async function inspect(id) {
    let letter;
    try {
      letter = await api(`/console/api/dead/${id}`);
    } catch (error) {
      notice(error.message, "error");
      return;
    }
    clear(detail).append(h("section", { class: "card", id: "dead-letter" },
      h("h2", {}, `Dead letter ${letter.id}`,
        letter.event_id ? h("span", { class: "muted" }, ` · event `, h("a", { href: `/console/events/${letter.event_id}` }, `#${letter.event_id}`)) : null),
      h("p", { class: "reason" }, letter.reason),
      h("h3", {}, "Event"),
      h("pre", { class: "dead-event" }, pretty(letter.event)),
      letter.letters.map((record) => [
        record.last_request ? [h("h3", {}, "Last request"), h("pre", {},
          `${record.last_request.method} ${record.last_request.url}\n`,
          (record.last_request.headers || []).map(([n, v]) => `${n}: ${v}\n`).join(""),
          record.last_request.body ? `\n${pretty(record.last_request.body)}` : "")] : null,
        record.last_response ? [h("h3", {}, "Last response"), h("pre", {},
          `${record.last_response.status}\n`,
          (record.last_response.headers || []).map(([n, v]) => `${n}: ${v}\n`).join(""),
          record.last_response.body ? `\n${pretty(record.last_response.body)}` : "")] : null,
        h("p", { class: "muted" }, `${record.attempts ?? 0} attempts · ${record.reason}`),
      ])));
  }

  connection.addEventListener("change", load);
  let typing;
  reason.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(load, 300);
  });
  await load();
}

/** A button that asks to be clicked twice before it acts. */
function confirmingButton(label, id, action, kind) {
  const button = h("button", { type: "button", id, class: kind || null }, label);
  let armed = null;
  button.addEventListener("click", async () => {
    if (!armed) {
      button.textContent = `${label}: click again to confirm`;
      armed = setTimeout(() => {
        button.textContent = label;
        armed = null;
      }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    button.textContent = label;
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

// ---- playground --------------------------------------------------------------------------

async function playgroundPage(page) {
  const choose = h("select", { id: "playground-mapping" }, h("option", { value: "" }, "a mapping of this server…"));
  const file = h("input", { type: "text", id: "playground-file", value: "playground.yaml", size: 22 });
  const mapping = h("textarea", { class: "mapping", id: "playground-yaml", spellcheck: "false" });
  const settings = h("textarea", { class: "settings", id: "playground-settings", spellcheck: "false", placeholder: "api_key: ...\nregion: us" });
  const recent = h("select", { id: "playground-recent" }, h("option", { value: "" }, "a recent event…"));
  const events = h("textarea", { class: "events", id: "playground-events", spellcheck: "false", placeholder: '{"type": "track", "event": "Order Completed", "userId": "u1"}' });
  const now = h("input", { type: "text", id: "playground-now", placeholder: "now, e.g. 2026-11-02T09:00:00Z", size: 28 });
  const batch = h("input", { type: "checkbox", id: "playground-batch" });
  const download = h("button", { type: "button", id: "playground-download", disabled: true }, "Download as a golden case");
  const output = h("div", { id: "playground-output" }, h("p", { class: "muted" }, "Pick or paste a mapping, then give settings and events."));

  append(page,
    h("h1", {}, "Playground"),
    h("div", { class: "columns" },
      h("section", { class: "card" },
        h("div", { class: "toolbar" }, choose, h("span", { class: "muted" }, "file"), file),
        h("label", { class: "field", for: "playground-yaml" }, "Mapping (YAML)"), mapping,
        h("label", { class: "field", for: "playground-settings" }, "Settings (YAML or JSON)"), settings,
        h("div", { class: "toolbar" }, h("label", { class: "field", for: "playground-events" }, "Events: a JSON object, an array, or one a line"), recent),
        events,
        h("div", { class: "toolbar" }, now,
          h("label", {}, batch, " merge batches"),
          h("button", { type: "button", id: "playground-run" }, "Run"), download)),
      h("section", { class: "card" }, output)));

  let texts = {};
  try {
    const listed = await api("/console/api/mappings");
    for (const found of listed.mappings) {
      texts[found.file] = found.text;
      append(choose, h("option", { value: found.file }, found.file));
    }
    const events = await api("/console/api/events?limit=50");
    for (const event of events.events) {
      append(recent, h("option", { value: event.id },
        `#${event.id} ${event.source} ${event.type ?? ""} ${event.name ?? ""} ${event.user ?? ""}`));
    }
  } catch (error) {
    notice(error.message, "error");
  }

  let last = null;
  // Runs overlap (typing, then Run): only the latest one's answer is drawn.
  let runs = 0;
  async function run() {
    if (!mapping.value.trim()) return;
    const mine = ++runs;
    const trial = {
      mapping: mapping.value,
      file: file.value || "playground.yaml",
      settings: settings.value,
      events: events.value,
      now: now.value.trim() || null,
      batch: batch.checked,
    };
    let result;
    try {
      result = await post("/console/api/playground", trial);
    } catch (error) {
      if (mine === runs) clear(output).append(h("p", { class: "error-text" }, error.message));
      return;
    }
    if (mine !== runs) return;
    last = result;
    download.disabled = !result.case;
    drawResult(output, result);
  }

  choose.addEventListener("change", () => {
    if (!choose.value) return;
    mapping.value = texts[choose.value];
    file.value = choose.value;
    run();
  });
  recent.addEventListener("change", async () => {
    if (!recent.value) return;
    try {
      const event = await api(`/console/api/events/${recent.value}`);
      events.value = pretty(event.event);
      run();
    } catch (error) {
      notice(error.message, "error");
    }
  });
  let typing;
  for (const input of [mapping, settings, events, now, file]) {
    input.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(run, 400);
    });
  }
  batch.addEventListener("change", run);
  document.getElementById("playground-run").addEventListener("click", run);
  download.addEventListener("click", () => {
    if (!last || !last.case) return;
    const blob = new Blob([last.case], { type: "application/yaml" });
    const link = h("a", { download: `${last.mapping || "case"}-case.yaml` });
    link.href = URL.createObjectURL(blob);
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  });
}

function drawResult(output, result) {
  clear(output);
  if (!result.valid) {
    append(output, h("h2", { class: "error-text" }, `The mapping has ${result.problems.length} problem${result.problems.length === 1 ? "" : "s"}`),
      h("div", { id: "playground-problems" }, result.problems.map((problem) => h("pre", { class: "problem" }, problem.rendered))));
    return;
  }
  if (result.settings_error) {
    append(output, h("h2", { class: "error-text" }, "Settings"), h("pre", { id: "playground-settings-error" }, result.settings_error));
    return;
  }
  if (result.events_error) {
    append(output, h("h2", { class: "error-text" }, "Events"), h("pre", { id: "playground-events-error" }, result.events_error));
    return;
  }
  append(output,
    h("h2", {}, `Requests (${result.requests.length})`, h("span", { class: "counts" }, "as ferry map prints them, secrets redacted")),
    h("div", { id: "playground-requests" }, result.requests.map((request) => h("pre", { class: "request" }, JSON.stringify(request, null, 2)))),
    result.outcomes.length
      ? [h("h2", {}, "Skipped and failed"), h("div", { id: "playground-outcomes" }, result.outcomes.map((outcome) =>
        h("p", {}, badge(outcome.error ? "failed" : "skipped"), `event ${outcome.event}`, outcome.action ? ` → ${outcome.action}` : "", ": ",
          h("span", { class: "reason" }, outcome.error || outcome.skipped))))]
      : null,
    h("h2", {}, "Trace"),
    h("pre", { id: "playground-trace", class: "trace" }, result.trace.map((t) => `event ${t.event}: ${t.line}`).join("\n")),
    h("h2", {}, "Golden case snapshot"),
    h("pre", { id: "playground-snapshot" }, result.snapshot));
}

// ---- start -------------------------------------------------------------------------------

function start() {
  setUpToken();
  const page = document.getElementById("page");
  clear(page);
  const path = location.pathname.replace(/\/+$/, "");
  const eventMatch = path.match(/^\/console\/events\/(\d+)$/);
  let current = "overview";
  if (eventMatch) {
    current = null;
    document.title = `event ${eventMatch[1]} · ferry console`;
    eventPage(page, eventMatch[1]);
  } else if (path === "/console/dead") {
    current = "dead";
    document.title = "dead letters · ferry console";
    deadPage(page);
  } else if (path === "/console/playground") {
    current = "playground";
    document.title = "playground · ferry console";
    playgroundPage(page);
  } else {
    overviewPage(page);
  }
  for (const link of document.querySelectorAll("header nav a")) {
    link.classList.toggle("current", link.dataset.page === current);
  }
  if (current !== "overview") {
    const state = document.getElementById("live-state");
    state.textContent = "";
  }
}

document.addEventListener("DOMContentLoaded", start);
