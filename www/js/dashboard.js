// The dashboard: relay and override switches, live readings, the power chart, faults.
import { $ } from "./dom.js";
import { dateTimeText, espDate, espToUnix, formatValue, timeText, NO_VALUE } from "./format.js";
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
    conn.request({ command: "switch", state: on ? "on" : "off" })
      .catch((err) => reportError(err, "Switching the plug"));
  });
  override.addEventListener("click", () => {
    const on = override.getAttribute("aria-checked") !== "true";
    conn.request({ command: "save_thing", thing: { id: PLUG, override: on } })
      .then(showSwitches)
      .catch((err) => reportError(err, "Changing the override"));
  });

  function showSwitches() {
    const plug = model.things.get(PLUG);
    const live = conn.state === "open" && plug !== undefined;
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
    if (meter && meter.fault) return `sensor fault: ${meter.fault}`;
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
    const date = espDate(model.lastUpdate);
    const today = date.toDateString() === new Date().toDateString();
    $("#last-update").textContent = today ? timeText(date) : dateTimeText(date);
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
    if (m.thingId === PLUG) { showSwitches(); askStatus(); }
    if (TILES.includes(m.thingId)) {
      const tile = $(`.tile[data-thing="${m.thingId}"]`);
      if (tile.classList.contains("invalid") === (m.valid !== false)) askStatus();  // validity changed
      showTile(m.thingId);
    }
    if (m.thingId === POWER && m.valid !== false) learnOffset(espToUnix(m.lastUpdate));
    showLastUpdate();
  });
  conn.on("response_status", showStatus);
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
    conn.request({ command: "request_history" }).then((m) => {
      const history = Array.isArray(m.history) ? m.history : [];
      if (history.length) learnOffset(espToUnix(history[history.length - 1][0]));
      chart.fill(history);
    }).catch((err) => {
      if (!err.unsupported) reportError(err, "Reading the power history");
    });
  });

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
