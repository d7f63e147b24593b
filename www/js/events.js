// The Events view: the plug's log, newest first, kept live by `event` pushes.
import { $, el } from "./dom.js";
import { dateTimeText, espDate } from "./format.js";
import { reportError } from "./notify.js";

const KEEP = 200;  // as many as the daemon keeps

export function startEvents(conn, views) {
  const list = $("#event-list");
  let loaded = false;

  function row(e) {
    return el("li", { class: `event kind-${String(e.kind).replace(/\W/g, "")}` },
      el("time", { datetime: espDate(e.time).toISOString() }, dateTimeText(espDate(e.time))),
      el("span", { class: "badge" }, e.kind),
      el("span", { class: "message" }, e.message),
      e.cause ? el("span", { class: "muted cause" }, `by ${e.cause}`) : null);
  }

  function load() {
    return conn.request({ command: "request_events" }).then((m) => {
      loaded = true;
      list.replaceChildren(...m.events.slice(-KEEP).reverse().map(row));
    }).catch((err) => reportError(err, "Reading the events"));
  }

  conn.on("event", (m) => {
    if (!loaded || !m.event) return;
    list.prepend(row(m.event));
    while (list.children.length > KEEP) list.lastElementChild.remove();
  });
  conn.onOpen(() => { if (loaded || views.visible("events")) load(); });
  views.register("events", { shown: load });
}
