// The dashboard: relay and override switches, live readings, the power chart, faults.
import { $ } from "./dom.js";
import { clockText, espDate, espToUnix, formatValue, timeText, NO_VALUE } from "./format.js";
import { model } from "./model.js";
import { reportError } from "./notify.js";
import { PowerChart } from "./power-chart.js";

const PLUG = 1;
const POWER = 2;
const TILES = [2, 5, 3, 6];
const STATUS_EVERY = 10000;  // ms; status has no push, faults and trips are also asked on change

export function startDashboard(conn, views) {
  const relay = $("#relay-switch");
  const override = $("#override-switch");
  const chart = new PowerChart($("#chart"), $("#chart-note"));
  // The plug's clock minus this device's, in s: the largest seen of (value's time - now), since
  // a fresh value's time is at most the plug's now. Points are then stamped on the plug's clock.
  let offset = null;
  const learnOffset = (unixSeconds) => {
    const guess = unixSeconds - Date.now() / 1000;
    if (offset === null || guess > offset) offset = guess;
  };

  relay.addEventListener("click", () => {
    const on = relay.getAttribute("aria-checked") !== "true";
    const request = { command: "switch", state: on ? "on" : "off" };
    const hold = Number($("#relay-for").value);
    if (on && hold > 0) request.for = hold;
    conn.request(request)
      .then((m) => { if ("autoOffAt" in m) showAutoOff(m.autoOffAt); })
      .catch((err) => reportError(err, "Switching the plug"));
  });

  // The auto-off: when it switches the plug off, counted down each second.
  let autoOffAt = null;
  function showAutoOff(at) {
    autoOffAt = at ?? null;
    tickAutoOff();
  }
  function tickAutoOff() {
    const line = $("#auto-off");
    const plug = model.things.get(PLUG);
    const left = autoOffAt === null ? null : Math.max(0, Math.round(autoOffAt - Date.now() / 1000 - (offset ?? 0)));
    line.hidden = left === null || !plug || plug.value !== 1;
    if (line.hidden) return;
    const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    const count = h ? `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}` : `${m}:${String(s).padStart(2, "0")}`;
    line.textContent = `Switches off in ${count} (at ${timeText(new Date(autoOffAt * 1000))})`;
  }
  setInterval(tickAutoOff, 1000);
  override.addEventListener("click", () => {
    const on = override.getAttribute("aria-checked") !== "true";
    conn.request({ command: "save_thing", thing: { id: PLUG, override: on } })
      .then(showSwitches)
      .catch((err) => reportError(err, "Changing the override"));
  });

  function showSwitches() {
    const plug = model.things.get(PLUG);
    // Usable while a socket opens (a request then waits for it): a login's reconnect keeps
    // the focus on the switch that asked for it.
    const live = conn.state !== "closed" && plug !== undefined;
    relay.disabled = override.disabled = !live;
    if (!plug) return;
    const on = plug.value === 1;
    relay.setAttribute("aria-checked", String(on));
    $("#relay-state").textContent = on ? "On" : "Off";
    $("#relay-label").textContent = plug.name || "Plug";
    override.setAttribute("aria-checked", String(plug.override === true));
  }

  function faultText() {
    const meter = model.status && model.status.meter;
    if (model.status && meter === null) return "no meter on this plug";
    if (meter && meter.fault) return "not known (sensor fault)";
    return "no reading yet";
  }

  function showTile(id) {
    const tile = $(`.tile[data-thing="${id}"]`);
    const thing = model.things.get(id);
    const valid = thing !== undefined && thing.valid !== false;
    $(".value", tile).textContent = thing ? formatValue(thing, true) : NO_VALUE;
    $(".fault", tile).textContent = thing && !valid ? faultText() : "";
    tile.classList.toggle("invalid", thing !== undefined && !valid);
  }

  function showLastUpdate() {
    if (model.lastUpdate === null) return;
    $("#last-update").textContent = clockText(espDate(model.lastUpdate));
  }

  function showStatus() {
    const status = model.status;
    const trip = $("#trip");
    trip.hidden = !status || !status.tripped;
    if (status && status.tripped) {
      trip.textContent = `Protection switched the plug off: ${status.tripped}. Recipes cannot switch it on; `
        + "switching it on yourself clears this.";
    }
    const meter = status && status.meter;
    const fault = $("#meter-fault");
    fault.hidden = !(meter && (meter.fault || meter.clipped));
    if (meter && meter.fault) fault.textContent = `Current sensor fault: ${meter.fault}. Power and current are not known.`;
    else if (meter && meter.clipped) fault.textContent = "The current is beyond the sensor's range: readings are too low.";
    const hardware = [];
    if (status && status.relayFault) hardware.push(`The relay does not switch: ${status.relayFault}.`);
    if (status && status.displayFault) hardware.push(`The display does not work: ${status.displayFault}.`);
    $("#hardware-fault").hidden = hardware.length === 0;
    $("#hardware-fault").textContent = hardware.join(" ");
    TILES.forEach(showTile);
  }

  function showAll() {
    showSwitches();
    TILES.forEach(showTile);
    showLastUpdate();
  }

  let statusAsked = false;
  function askStatus() {
    if (statusAsked || conn.state !== "open") return;
    statusAsked = true;
    conn.request({ command: "request_status" }).catch(() => {}).finally(() => { statusAsked = false; });
  }

  conn.on("response_things", showAll);
  conn.on("thing_update", (m) => {
    if (m.thingId === PLUG) { showSwitches(); askStatus(); if ("autoOffAt" in m) showAutoOff(m.autoOffAt); }
    if (TILES.includes(m.thingId)) {
      const tile = $(`.tile[data-thing="${m.thingId}"]`);
      if (tile.classList.contains("invalid") === (m.valid !== false)) askStatus();  // validity changed
      showTile(m.thingId);
    }
    if (m.thingId === POWER && m.valid !== false) learnOffset(espToUnix(m.lastUpdate));
    showLastUpdate();
  });
  conn.on("response_status", (m) => { showStatus(); if ("autoOffAt" in m) showAutoOff(m.autoOffAt); });
  conn.on("event", (m) => {
    if (!m.event) return;
    if (["fault", "protection", "meter"].includes(m.event.kind)) askStatus();
    // thing_update does not carry `override`; its change is known from the event it makes.
    if (m.event.kind === "thing") conn.request({ command: "request_things" }).catch(() => {});
  });
  conn.onState(() => showSwitches());

  conn.onOpen(() => {
    conn.request({ command: "request_things" }).catch((err) => reportError(err, "Reading the things"));
    askStatus();
    loadHistory();
  });

  // The chart's range: 10 minutes a second at a time (live), or an hour, a day, two days a
  // minute at a time from the plug's history, fetched again each minute.
  const RANGE_TITLES = { 600: "last 10 minutes", 3600: "last hour", 86400: "last day", 172800: "last two days" };
  let range = 600;
  function loadHistory() {
    const asked = range;
    const request = asked === 600 ? { command: "request_history" } : { command: "request_history", range: asked };
    conn.request(request).then((m) => {
      if (asked !== range) return;  // another range was chosen meanwhile
      const history = Array.isArray(m.history) ? m.history : [];
      if (asked === 600) {
        if (history.length) learnOffset(espToUnix(history[history.length - 1][0]));
        chart.fill(history);
      } else {
        chart.fillMinutes(history, asked);
      }
    }).catch((err) => {
      if (!err.unsupported) reportError(err, "Reading the power history");
    });
  }
  for (const button of document.querySelectorAll("#chart-ranges button")) {
    button.addEventListener("click", () => {
      range = Number(button.dataset.range);
      for (const b of document.querySelectorAll("#chart-ranges button")) b.setAttribute("aria-pressed", String(b === button));
      $("#chart-title").textContent = `Power, ${RANGE_TITLES[range]}`;
      loadHistory();
    });
  }
  setInterval(() => { if (range !== 600 && conn.state === "open" && views.current === "dashboard") loadHistory(); }, 60000);

  // One point a second, on the plug's clock: the newest power, or a gap when there is none.
  setInterval(() => {
    if (conn.state !== "open") return;
    const power = model.things.get(POWER);
    chart.add(Math.floor(Date.now() / 1000 + (offset ?? 0)), power && power.valid !== false ? power.value : null);
  }, 1000);
  setInterval(() => { if (views.current === "dashboard") askStatus(); }, STATUS_EVERY);

  views.register("dashboard", { shown: () => { chart.draw(); showAll(); } });
  return { chart };
}
