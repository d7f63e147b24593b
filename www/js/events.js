// The Events view: the plug's log, newest first, kept live by `event` pushes.
import { $, el } from "./dom.js";
import { dateTimeText, espDate, whenText } from "./format.js";
import { reportError } from "./notify.js";

const KEEP = 300;  // as many as the daemon keeps (200 important, 100 others)

/** Why an event happened, in words: the daemon sends its cause as "<kind> <detail>"; a detail
 * the event's message already says is not said twice. */
export function causeText(cause, message = "") {
  if (!cause) return "";
  const [kind, ...rest] = String(cause).split(" ");
  const detail = rest.join(" ");
  switch (kind) {
    case "user": return detail ? `by a person at ${detail}` : "by a person";
    case "recipe": {
      const [id, sentence] = detail.split(/, (.*)/s);
      return sentence && !message.includes(sentence) ? `by recipe ${id}: ${sentence}` : `by recipe ${id}`;
    }
    case "protection": return detail ? `by the protection: ${detail}` : "by the protection";
    case "start": return "at start";
    case "sensor": return detail ? `by the sensor (${detail})` : "by the sensor";
    case "clock": return "by the clock";
    case "schedule": return detail ? `by the schedule: ${detail}` : "by the schedule";
    case "auto-off": return detail ? `by the auto-off timer: ${detail}` : "by the auto-off timer";
    case "mqtt": return detail ? `by an MQTT command from ${detail}` : "by an MQTT command";
    case "http": return detail ? `by an HTTP request from ${detail}` : "by an HTTP request";
    case "mesh": return "heard on the mesh";
    case "display": return "by the display";
    default: return `by ${cause}`;
  }
}

const identity = (e) => JSON.stringify([e.kind, e.subject ?? "", e.message]);

const REFRESH = 10000;  // ms: "12 s ago" is written again this often while the list is shown

/** A <time> that reads "12 s ago" while recent, with the full date and time as its title. */
function stamp(date) {
  return el("time", { datetime: date.toISOString(), title: dateTimeText(date) }, whenText(date));
}

/** "×200, last 3 min ago": the count of a repeated event and when the latest was. */
function repeats(e) {
  return el("span", { class: "muted repeats" }, `×${e.count}, last `, stamp(espDate(e.last ?? e.time)));
}

export function startEvents(conn, views) {
  const list = $("#event-list");
  let loaded = false;

  function row(e) {
    const item = el("li", { class: `event kind-${String(e.kind).replace(/\W/g, "")}` },
      stamp(espDate(e.time)),
      el("span", { class: "badge" }, e.kind),
      el("span", { class: "message" }, e.message, e.count > 1 ? [" ", repeats(e)] : null),
      e.cause ? el("span", { class: "muted cause" }, causeText(e.cause, e.message)) : null);
    item.dataset.identity = identity(e);
    item.dataset.count = String(e.count ?? 1);
    return item;
  }

  function load() {
    return conn.request({ command: "request_events" }).then((m) => {
      loaded = true;
      list.replaceChildren(...m.events.slice(-KEEP).reverse().map(row));
    }).catch((err) => reportError(err, "Reading the events"));
  }

  conn.on("event", (m) => {
    if (!loaded || !m.event) return;
    // A repeat takes the place of the (newest) line it summarises, on top as the daemon keeps
    // it; one that counts no more than that line tells nothing new.
    const key = identity(m.event);
    const old = m.event.count > 1
      ? [...list.children].find((li) => li.dataset.identity === key) : null;
    if (old && Number(old.dataset.count) >= m.event.count) return;
    old?.remove();
    list.prepend(row(m.event));
    while (list.children.length > KEEP) list.lastElementChild.remove();
  });
  conn.onOpen(() => { if (loaded || views.visible("events")) load(); });
  setInterval(() => {
    if (!views.visible("events")) return;
    for (const time of list.querySelectorAll("time")) time.textContent = whenText(new Date(time.dateTime));
  }, REFRESH);
  views.register("events", { shown: load });
}
