// rivetkit for Python: the actor inspector page the Rivet dashboard embeds at
// /gateway/{actor}/inspector/ui/?actorId=&shellOrigin=&theme= (see rivetkit/inspector/ui.py).
//
// The dashboard draws the tab strip; this page draws the active tab. Messages with the
// dashboard (postMessage, envelope version 1): we send `ready`, then `tabs-available`
// once the actor's capabilities are known, and `token-refresh-needed` on a 401; we receive
// `init` (actorId, authToken, activeTab, theme; again on every token refresh or theme change)
// and `set-active-tab`. Opened directly (no parent frame) the page asks for the token and
// draws its own tab strip.
//
// Data comes from the inspector's HTTP routes (Authorization: Bearer <token>). The inspector
// WebSocket (protocol_version=6) is used only as a change signal: the first byte of each
// frame is the ToClient union tag, and each push re-reads the part it names.
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const shellOrigin = (() => {
    try {
      return new URL(params.get("shellOrigin")).origin;
    } catch {
      return location.origin;
    }
  })();
  const embedded = window.parent !== window;
  const base = location.pathname.replace(/\/inspector\/ui(\/(index\.html)?)?$/, "");
  const root = document.getElementById("root");

  const TABS = [
    { id: "workflow", label: "Workflow", icon: "workflow" },
    { id: "state", label: "State", icon: "state" },
    { id: "database", label: "Database", icon: "database" },
    { id: "queue", label: "Queue", icon: "queue" },
    { id: "schedules", label: "Schedules", icon: "calendar" },
    { id: "connections", label: "Connections", icon: "plug" },
    { id: "console", label: "Console", icon: "terminal" },
    { id: "traces", label: "Traces", icon: "logs" },
  ];
  const LIVE_TABS = new Set(["state", "queue", "schedules", "connections", "workflow"]);
  // ToClient (v6) union tags of the pushes, and what each one changes.
  const PUSHES = {
    3: ["connections"],
    4: ["queue"],
    5: ["state"],
    6: ["workflow"],
    7: ["schedules"],
    17: ["summary", "state", "connections", "queue", "schedules", "database", "workflow"],
  };

  const app = {
    actorId: params.get("actorId") || "",
    token: null,
    active: null,
    data: {},
    errors: {},
    editing: false,
    selectedTable: null,
    sqlResult: null,
    consoleLog: [],
    histories: {},
    socket: null,
    backoff: 1000,
    pending: new Set(),
    flushTimer: null,
  };

  function setTheme(theme) {
    document.documentElement.classList.toggle("dark", (theme || "dark") === "dark");
  }
  setTheme(params.get("theme"));

  function post(message) {
    if (embedded) window.parent.postMessage(message, shellOrigin);
  }

  // -- HTTP ---------------------------------------------------------------------------------

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${app.token}` };
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(`${base}/inspector${path}`, init);
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (response.status === 401) post({ type: "token-refresh-needed", v: 1 });
    if (!response.ok) {
      const error = new Error(
        data && data.code ? `${data.group}.${data.code}: ${data.message}` : `HTTP ${response.status}`,
      );
      error.status = response.status;
      throw error;
    }
    return data;
  }

  const LOADERS = {
    summary: async () => {
      app.data.summary = await api("GET", "/summary");
      app.data.rpcs = app.data.summary.rpcs;
    },
    state: async () => {
      app.data.state = await api("GET", "/state");
    },
    connections: async () => {
      app.data.connections = (await api("GET", "/connections")).connections;
    },
    queue: async () => {
      app.data.queue = await api("GET", "/queue?limit=100");
    },
    schedules: async () => {
      app.data.schedules = (await api("GET", "/schedules")).schedules;
    },
    database: async () => {
      if (!(app.data.summary && app.data.summary.isDatabaseEnabled)) return;
      app.data.schema = (await api("GET", "/database/schema")).schema;
      if (app.selectedTable) await loadRows();
    },
    workflow: async () => {
      if (!(app.data.summary && app.data.summary.isWorkflowEnabled)) return;
      app.data.workflow = await api("GET", "/workflow-history");
    },
    traces: async () => {
      // A query answers the oldest spans of its range first (RivetKit's readRangeWire), so
      // the latest are asked for in shrinking windows until one holds them all.
      const end = Date.now() + 60000;
      for (const span of [3600000, 300000, 30000]) {
        app.data.traces = await api("GET", `/traces?startMs=${end - span}&endMs=${end}&limit=1000`);
        if (!app.data.traces || !app.data.traces.clamped) break;
      }
    },
  };

  const PAGE = 100;

  async function loadRows() {
    const table = encodeURIComponent(app.selectedTable);
    const offset = app.rowsOffset || 0;
    app.data.rows = (await api("GET", `/database/rows?table=${table}&limit=${PAGE}&offset=${offset}`)).rows;
  }

  async function load(names) {
    await Promise.all(
      names.map(async (name) => {
        try {
          await LOADERS[name]();
          delete app.errors[name];
        } catch (error) {
          app.errors[name] = String(error.message || error);
        }
      }),
    );
  }

  function schedule(names) {
    for (const name of names) app.pending.add(name);
    // Until the actor has spans, each change may be its first: look again (adds the tab).
    if (spans().length === 0) app.pending.add("traces");
    if (app.flushTimer) return;
    app.flushTimer = setTimeout(async () => {
      app.flushTimer = null;
      const names = [...app.pending];
      app.pending.clear();
      await load(names);
      announceTabs();
      render();
    }, 100);
  }

  // -- capabilities and the tab list --------------------------------------------------------

  function spans() {
    const otlp = app.data.traces && app.data.traces.otlp;
    const out = [];
    const visit = (node) => {
      if (Array.isArray(node)) return node.forEach(visit);
      if (!node || typeof node !== "object") return;
      if (Array.isArray(node.spans)) out.push(...node.spans);
      for (const key of ["resourceSpans", "scopeSpans"]) if (node[key]) visit(node[key]);
    };
    visit(otlp);
    return out;
  }

  function availableTabs() {
    const summary = app.data.summary;
    if (!summary) return null;
    const has = {
      workflow: summary.isWorkflowEnabled,
      state: summary.isStateEnabled,
      database: summary.isDatabaseEnabled,
      traces: spans().length > 0,
    };
    return TABS.filter((tab) => !(tab.id in has) || Boolean(has[tab.id]));
  }

  let announced = "";
  function announceTabs() {
    const tabs = availableTabs();
    if (!tabs) return;
    const text = JSON.stringify(tabs);
    if (text === announced) return;
    announced = text;
    post({ type: "tabs-available", v: 1, tabs });
  }

  // -- live changes -------------------------------------------------------------------------

  function connectSocket() {
    if (app.socket) app.socket.close(1000);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}${base}/inspector/connect?protocol_version=6`;
    const socket = new WebSocket(url, [
      "rivet",
      "rivet_target.actor",
      `rivet_actor.${app.actorId}`,
      "rivet_encoding.bare",
      `rivet_inspector_token.${app.token}`,
    ]);
    socket.binaryType = "arraybuffer";
    app.socket = socket;
    let openedAt = 0;
    socket.onopen = () => {
      openedAt = Date.now();
      setLive(true);
    };
    socket.onmessage = (event) => {
      const tag = new Uint8Array(event.data)[0];
      const names = PUSHES[tag];
      if (names) schedule(tag === 5 ? names : [...names, "summary"]);
    };
    socket.onclose = (event) => {
      if (app.socket !== socket) return;
      app.socket = null;
      setLive(false);
      if (event.code === 1008) {
        post({ type: "token-refresh-needed", v: 1 });
        return;
      }
      // A socket that stayed up a while starts the backoff over.
      if (openedAt && Date.now() - openedAt > 10000) app.backoff = 1000;
      setTimeout(() => {
        if (!app.socket) connectSocket();
      }, app.backoff);
      app.backoff = Math.min(app.backoff * 2, 30000);
    };
  }

  function setLive(live) {
    document.documentElement.dataset.live = live ? "1" : "0";
  }

  // -- rendering ----------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function json(value, indent) {
    try {
      return JSON.stringify(value, null, indent) ?? "undefined";
    } catch {
      return String(value);
    }
  }

  function time(ms) {
    if (ms === null || ms === undefined) return "—";
    const date = new Date(Number(ms));
    return Number.isNaN(date.getTime()) ? String(ms) : date.toLocaleString();
  }

  function table(columns, rows, cls) {
    if (!rows.length) return h("p", { class: "muted" }, "Nothing here.");
    return h(
      "table",
      { class: cls || "grid" },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.label)))),
      h(
        "tbody",
        {},
        rows.map((row) => h("tr", {}, columns.map((c) => h("td", {}, c.value(row))))),
      ),
    );
  }

  function rowsTable(rows) {
    const columns = [];
    for (const row of rows) for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key);
    return table(
      columns.map((key) => ({
        label: key,
        value: (row) => (typeof row[key] === "string" ? row[key] : json(row[key])),
      })),
      rows,
      "grid rows",
    );
  }

  // One table of the Database tab: its columns with their types, a page of rows, paging.
  function tableView(entry) {
    if (!entry) return h("p", { class: "muted" }, "This table is gone.");
    const offset = app.rowsOffset || 0;
    const total = entry.records ?? 0;
    const page = async (delta) => {
      app.rowsOffset = Math.max(0, offset + delta);
      try {
        await loadRows();
        delete app.errors.database;
      } catch (error) {
        app.errors.database = error.message;
      }
      render();
    };
    const columns = (entry.columns || []).map((c) => `${c.name} ${c.type || ""}${c.pk ? " (key)" : ""}`.trim());
    return [
      h("h3", {}, entry.table.name),
      h("div", { class: "toolbar" },
        h("span", { class: "muted" }, `${columns.length} columns: ${columns.join(", ")}; ${total} rows`),
        h("button", { type: "button", class: "ghost", disabled: offset === 0, onclick: () => page(-PAGE) }, "Previous"),
        h("span", { class: "muted" }, `${total ? offset + 1 : 0}–${Math.min(offset + PAGE, total)}`),
        h("button", { type: "button", class: "ghost", disabled: offset + PAGE >= total, onclick: () => page(PAGE) }, "Next")),
      rowsTable(app.data.rows || []),
    ];
  }

  function errorOf(name) {
    return app.errors[name] ? h("p", { class: "error", role: "alert" }, app.errors[name]) : null;
  }

  const VIEWS = {
    state() {
      const state = app.data.state;
      if (!state) return [errorOf("state"), h("p", { class: "muted" }, "Loading…")];
      if (!state.isStateEnabled) return h("p", { class: "muted" }, "This actor has no state.");
      if (app.editing) {
        const area = h("textarea", { id: "state-editor", spellcheck: "false" }, json(state.state, 2));
        return [
          h("div", { class: "toolbar" },
            h("button", { type: "button", onclick: async () => {
              let value;
              try {
                value = JSON.parse(area.value);
              } catch (error) {
                app.errors.state = `Not JSON: ${error.message}`;
                return render();
              }
              try {
                await api("PATCH", "/state", { state: value });
                app.editing = false;
                await load(["state"]);
              } catch (error) {
                app.errors.state = error.message;
              }
              render();
            } }, "Save"),
            h("button", { type: "button", class: "ghost", onclick: () => { app.editing = false; render(); } }, "Cancel")),
          errorOf("state"),
          area,
        ];
      }
      return [
        h("div", { class: "toolbar" },
          h("button", { type: "button", onclick: () => { app.editing = true; render(); } }, "Edit")),
        errorOf("state"),
        h("pre", { class: "json", "data-testid": "state-json" }, json(state.state, 2)),
      ];
    },

    database() {
      const schema = app.data.schema;
      if (!schema) return [errorOf("database"), h("p", { class: "muted" }, "Loading…")];
      const tables = schema.tables || [];
      const list = h("ul", { class: "tables" }, tables.map((entry) => {
        const name = entry.table.name;
        return h("li", {},
          h("button", {
            type: "button",
            class: name === app.selectedTable ? "table selected" : "table",
            "data-table": name,
            onclick: async () => {
              app.selectedTable = name;
              app.rowsOffset = 0;
              try {
                await loadRows();
                delete app.errors.database;
              } catch (error) {
                app.errors.database = error.message;
              }
              render();
            },
          }, name, h("span", { class: "muted" }, ` ${entry.records ?? ""}`)));
      }));
      const sql = h("textarea", { id: "sql", rows: "3", spellcheck: "false", placeholder: "SELECT * FROM …" },
        app.sqlText || "");
      const run = async () => {
        app.sqlText = sql.value;
        try {
          app.sqlResult = { rows: (await api("POST", "/database/execute", { sql: sql.value })).rows };
        } catch (error) {
          app.sqlResult = { error: error.message };
        }
        render();
      };
      return [
        errorOf("database"),
        h("div", { class: "split" },
          h("nav", { class: "side" }, h("h3", {}, "Tables"), tables.length ? list : h("p", { class: "muted" }, "No tables.")),
          h("section", { class: "main" },
            app.selectedTable ? tableView(tables.find((t) => t.table.name === app.selectedTable)) : h("p", { class: "muted" }, "Pick a table."),
            h("h3", {}, "Query"),
            sql,
            h("div", { class: "toolbar" }, h("button", { type: "button", onclick: run }, "Run")),
            app.sqlResult
              ? app.sqlResult.error
                ? h("p", { class: "error" }, app.sqlResult.error)
                : rowsTable(app.sqlResult.rows)
              : null)),
      ];
    },

    queue() {
      const queue = app.data.queue;
      if (!queue) return [errorOf("queue"), h("p", { class: "muted" }, "Loading…")];
      return [
        errorOf("queue"),
        h("p", { class: "summary", "data-testid": "queue-size" },
          `${queue.size} message${queue.size === 1 ? "" : "s"} queued (at most ${queue.maxSize})`),
        table(
          [
            { label: "ID", value: (m) => m.id },
            { label: "Queue", value: (m) => m.name },
            { label: "Sent", value: (m) => time(m.createdAtMs) },
          ],
          queue.messages,
        ),
        queue.truncated ? h("p", { class: "muted" }, "Only the first 100 are listed.") : null,
      ];
    },

    schedules() {
      const schedules = app.data.schedules;
      if (!schedules) return [errorOf("schedules"), h("p", { class: "muted" }, "Loading…")];
      const rows = table(
        [
          { label: "Kind", value: (s) => s.kind },
          { label: "Name / ID", value: (s) => s.name || s.id },
          { label: "Action", value: (s) => s.action },
          { label: "Args", value: (s) => json(s.args) },
          { label: "Repeats", value: (s) => s.expression ? `${s.expression}${s.timezone ? ` (${s.timezone})` : ""}` : s.intervalMs ? `every ${s.intervalMs} ms` : "once" },
          { label: "Next run", value: (s) => time(s.nextRunAt) },
          { label: "Last run", value: (s) => time(s.lastRunAt) },
          { label: "", value: (s) => s.kind === "at" ? "" : h("button", { type: "button", class: "ghost", onclick: async () => {
            try {
              const id = encodeURIComponent(s.id);
              app.histories[s.id] = (await api("GET", `/schedules/history?id=${id}&limit=20`)).history;
            } catch (error) {
              app.histories[s.id] = { error: error.message };
            }
            render();
          } }, "History") },
        ],
        schedules,
      );
      const histories = Object.entries(app.histories).map(([id, history]) => h("section", { class: "history" },
        h("h3", {}, `History of ${id}`),
        history.error ? h("p", { class: "error" }, history.error) : table(
          [
            { label: "Scheduled", value: (e) => time(e.scheduledAt) },
            { label: "Fired", value: (e) => time(e.firedAt) },
            { label: "Finished", value: (e) => time(e.finishedAt) },
            { label: "Result", value: (e) => e.error ? `error: ${e.error}` : json(e.result) },
          ],
          history,
        )));
      return [errorOf("schedules"), rows, histories];
    },

    connections() {
      const conns = app.data.connections;
      if (!conns) return [errorOf("connections"), h("p", { class: "muted" }, "Loading…")];
      return [
        errorOf("connections"),
        h("p", { class: "summary" }, `${conns.length} connection${conns.length === 1 ? "" : "s"}`),
        table(
          [
            { label: "ID", value: (c) => c.id },
            { label: "Params", value: (c) => json(c.details.params) },
            { label: "State", value: (c) => json(c.details.state) },
            { label: "Subscriptions", value: (c) => c.details.subscriptions },
            { label: "Hibernatable", value: (c) => (c.details.isHibernatable ? "yes" : "no") },
          ],
          conns,
        ),
      ];
    },

    console() {
      const rpcs = app.data.rpcs || [];
      const select = h("select", { id: "action" }, rpcs.map((name) => h("option", { value: name, selected: name === app.consoleAction }, name)));
      const args = h("input", { id: "args", type: "text", spellcheck: "false", value: app.consoleArgs || "[]", placeholder: "[1, \"two\"]" });
      args.addEventListener("keydown", (event) => {
        if (event.key === "Enter") call();
      });
      // No <form>: the dashboard's iframe sandbox has no allow-forms (submits are blocked).
      const call = async () => {
        app.consoleAction = select.value;
        app.consoleArgs = args.value;
        const entry = { action: select.value, args: args.value };
        try {
          const parsed = JSON.parse(args.value || "[]");
          entry.output = (await api("POST", `/action/${encodeURIComponent(select.value)}`, { args: Array.isArray(parsed) ? parsed : [parsed] })).output;
        } catch (error) {
          entry.error = error.message;
        }
        app.consoleLog.push(entry);
        render();
      };
      return [
        h("div", { class: "toolbar" }, select, args, h("button", { type: "button", onclick: call }, "Call")),
        h("ol", { class: "log" }, app.consoleLog.map((e) => h("li", {},
          h("code", {}, `${e.action}(${e.args})`),
          e.error ? h("span", { class: "error" }, ` ✗ ${e.error}`) : h("span", { class: "output" }, ` → ${json(e.output)}`)))),
      ];
    },

    workflow() {
      const flow = app.data.workflow;
      if (!flow) return [errorOf("workflow"), h("p", { class: "muted" }, "Loading…")];
      const history = flow.history || {};
      const names = history.nameRegistry || [];
      const meta = history.entryMetadata || {};
      const where = (location) => (location || []).map((part) =>
        part.tag === "WorkflowNameIndex" ? names[part.val] ?? `#${part.val}` : `${part.tag.replace(/^Workflow/, "")} ${json(part.val)}`).join(" / ");
      const replay = async (entryId) => {
        try {
          app.data.workflow = await api("POST", "/workflow/replay", entryId ? { entryId } : {});
          delete app.errors.workflow;
        } catch (error) {
          app.errors.workflow = error.message;
        }
        render();
      };
      const detail = (kind) => {
        const val = kind.val || {};
        if (val.error) return `error: ${val.error}`;
        if ("output" in val) return json(val.output);
        if ("deadline" in val) return `until ${time(val.deadline)}${val.state ? ` (${val.state})` : ""}`;
        if ("name" in val) return `message ${val.name}`;
        return json(val);
      };
      const entries = (history.entries || []).slice().sort((a, b) =>
        ((meta[a.id] || {}).createdAt ?? Infinity) - ((meta[b.id] || {}).createdAt ?? Infinity));
      return [
        errorOf("workflow"),
        h("div", { class: "toolbar" },
          h("span", { class: "summary", "data-testid": "workflow-state" }, `Workflow state: ${flow.workflowState ?? "unknown"}`),
          h("button", { type: "button", class: "ghost", onclick: () => replay(null) }, "Replay from the start")),
        table(
          [
            { label: "Entry", value: (e) => where(e.location) },
            { label: "Kind", value: (e) => e.kind.tag.replace(/^Workflow/, "").replace(/Entry$/, "") },
            { label: "Status", value: (e) => (meta[e.id] || {}).status ?? "—" },
            { label: "Attempts", value: (e) => (meta[e.id] || {}).attempts ?? "—" },
            { label: "Completed", value: (e) => time((meta[e.id] || {}).completedAt) },
            { label: "Result", value: (e) => detail(e.kind) },
            { label: "", value: (e) => e.kind.tag === "WorkflowStepEntry"
              ? h("button", { type: "button", class: "ghost", onclick: () => replay(e.id) }, "Replay from here") : "" },
          ],
          entries,
        ),
        h("details", {}, h("summary", {}, "Raw history"), h("pre", { class: "json" }, json(history, 2))),
      ];
    },

    traces() {
      const list = spans();
      return [
        errorOf("traces"),
        h("div", { class: "toolbar" }, h("button", { type: "button", onclick: () => schedule(["traces"]) }, "Refresh")),
        table(
          [
            { label: "Span", value: (s) => s.name },
            { label: "Start", value: (s) => time(Number(BigInt(s.startTimeUnixNano || 0) / 1000000n)) },
            { label: "Duration", value: (s) => `${(Number(BigInt(s.endTimeUnixNano || 0) - BigInt(s.startTimeUnixNano || 0)) / 1e6).toFixed(2)} ms` },
            { label: "Status", value: (s) => (s.status && s.status.code === 2 ? "error" : "ok") },
          ],
          list.slice().reverse().slice(0, 200),
        ),
      ];
    },
  };

  function render() {
    const tabs = availableTabs();
    if (!app.token) return renderLogin();
    if (!tabs) {
      root.replaceChildren(errorOf("summary") || h("p", { class: "muted" }, "Connecting to the actor…"));
      return;
    }
    if (app.editing && app.active === "state" && document.getElementById("state-editor")) return;
    let active = app.active;
    if (!tabs.some((t) => t.id === active)) active = tabs[0].id;
    root.dataset.state = "ready";
    root.dataset.tab = active;
    // Shown while the inspector socket is open (CSS: :root[data-live="1"]).
    const live = LIVE_TABS.has(active) ? h("span", { class: "live", title: "Updates as the actor changes" }, "Live") : null;
    const view = h("section", { class: `tab tab-${active}`, "data-tab": active }, live, VIEWS[active]());
    if (embedded) {
      root.replaceChildren(view);
    } else {
      const strip = h("nav", { class: "strip", "aria-label": "Inspector tabs" }, tabs.map((tab) =>
        h("button", { type: "button", class: tab.id === active ? "selected" : "", onclick: () => { app.active = tab.id; render(); } }, tab.label)));
      root.replaceChildren(strip, view);
    }
  }

  function renderLogin() {
    if (embedded) {
      root.replaceChildren(h("p", { class: "muted" }, "Waiting for the dashboard…"));
      return;
    }
    const input = h("input", { id: "token", type: "password", placeholder: "inspector token" });
    const open = () => start(input.value.trim());
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") open();
    });
    root.replaceChildren(h("div", { class: "toolbar" },
      h("label", { for: "token" }, "Inspector token (rivetkit inspect token ACTOR_ID)"),
      input, h("button", { type: "button", onclick: open }, "Open")));
  }

  async function start(token) {
    const first = app.token === null;
    app.token = token;
    await load(["summary", "state", "connections", "queue", "schedules", "database", "workflow", "traces"]);
    announceTabs();
    render();
    if (first || !app.socket) {
      app.backoff = 1000;
      connectSocket();
    }
  }

  window.addEventListener("message", (event) => {
    if (event.origin !== shellOrigin || event.source !== window.parent) return;
    const message = event.data;
    if (!message || message.v !== 1) return;
    if (message.type === "init") {
      if (app.actorId && message.actorId !== app.actorId) return;
      app.actorId = message.actorId;
      setTheme(message.theme);
      if (app.active === null && message.activeTab) app.active = message.activeTab;
      if (message.authToken !== app.token) start(message.authToken);
    } else if (message.type === "set-active-tab") {
      app.active = message.tab;
      app.editing = false;
      if (message.tab === "traces") schedule(["traces"]);
      render();
    }
  });

  render();
  post({ type: "ready", v: 1 });
})();
