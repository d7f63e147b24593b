// The Settings view: name, broadcast interval, display; Home Assistant and MQTT; calibration;
// simulated load; password; the configuration as a file.
import { $, el } from "./dom.js";
import { formatNumber, parseNumber } from "./format.js";
import { clearErrors, fieldError, formError, showApiError, whileBusy } from "./forms.js";
import { model } from "./model.js";
import { notify, reportError } from "./notify.js";

const NEEDS_VALUE = new Set(["current", "power", "voltage"]);

/** Submit handler: clear old errors, run `work` with the buttons disabled, show a refusal. */
function onSubmit(form, work) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    whileBusy(form, async () => {
      try {
        await work();
      } catch (err) {
        showApiError(form, err);
      }
    });
  });
}

export function startSettings(conn, views) {
  const settingsForm = $("#settings-form");
  const brightness = $("#s-brightness");
  const showBrightness = () => { $("#s-brightness-out").textContent = brightness.value; };
  brightness.addEventListener("input", showBrightness);

  function fillSettings(s) {
    $("#s-name").value = s["node.name"] ?? "";
    $("#s-interval").value = s["mesh.interval"] === undefined ? "" : formatNumber(s["mesh.interval"]);
    $("#s-mode").value = s["display.mode"] ?? "power";
    brightness.value = String(s["display.brightness"] ?? 7);
    showBrightness();
  }

  function loadSettings() {
    conn.request({ command: "request_settings" }).then((m) => {
      settingsForm.classList.remove("unavailable");
      fillSettings(m.settings || {});
      fillMqtt(m.settings || {}, m.secrets);
    }).catch((err) => {
      if (err.unsupported) {
        settingsForm.classList.add("unavailable");
        formError(settingsForm, "This plug cannot change these settings from the page yet.");
      } else reportError(err, "Reading the settings");
    });
  }

  onSubmit(settingsForm, async () => {
    const interval = parseNumber($("#s-interval").value);
    if (!Number.isFinite(interval)) {
      fieldError(settingsForm, "mesh.interval", "Type a number of seconds, for example 5.");
      return;
    }
    const settings = {
      "node.name": $("#s-name").value.trim(), "mesh.interval": interval,
      "display.mode": $("#s-mode").value, "display.brightness": Number(brightness.value),
    };
    const answer = await conn.request({ command: "save_settings", settings });
    if (answer.settings) fillSettings(answer.settings);
    notify("Settings saved.");
  });

  // --- Home Assistant and MQTT ------------------------------------------------------
  const mqttForm = $("#mqtt-form");
  const mqttField = (key) => mqttForm.elements[key];

  function fillMqtt(s, secrets) {
    mqttField("mqtt.host").value = s["mqtt.host"] ?? "";
    mqttField("mqtt.port").value = s["mqtt.port"] === undefined ? "" : String(s["mqtt.port"]);
    mqttField("mqtt.username").value = s["mqtt.username"] ?? "";
    mqttField("mqtt.password").value = "";
    mqttField("mqtt.password").placeholder = secrets && secrets["mqtt.password"] ? "set (type to change)" : "none";
    mqttField("mqtt.tls").checked = Boolean(s["mqtt.tls"]);
    mqttField("mqtt.discovery_prefix").value = s["mqtt.discovery_prefix"] ?? "";
    mqttField("mqtt.bridge_mesh").checked = Boolean(s["mqtt.bridge_mesh"]);
  }

  onSubmit(mqttForm, async () => {
    const port = Number(mqttField("mqtt.port").value.trim());
    if (!Number.isInteger(port)) {
      fieldError(mqttForm, "mqtt.port", "Type a port number, for example 1883.");
      return;
    }
    const settings = {
      "mqtt.host": mqttField("mqtt.host").value.trim(), "mqtt.port": port,
      "mqtt.username": mqttField("mqtt.username").value.trim(),
      "mqtt.tls": mqttField("mqtt.tls").checked,
      "mqtt.discovery_prefix": mqttField("mqtt.discovery_prefix").value.trim(),
      "mqtt.bridge_mesh": mqttField("mqtt.bridge_mesh").checked,
    };
    const password = mqttField("mqtt.password").value;
    if (password) settings["mqtt.password"] = password;  // empty: the one set stays
    const answer = await conn.request({ command: "save_settings", settings });
    if (answer.settings) fillMqtt(answer.settings, answer.secrets);
    notify(settings["mqtt.host"] ? "MQTT saved: connecting." : "MQTT saved: off.");
    conn.request({ command: "request_status" }).catch(() => {});
  });

  function showMqtt(state) {
    const line = $("#mqtt-state");
    if (!state || !state.enabled) {
      line.textContent = "Off: no broker is set.";
    } else if (state.state === "connected") {
      line.textContent = `Connected to ${state.broker}${state.tls ? " over TLS" : ""}; topics under ${state.topicPrefix}/.`;
    } else {
      line.textContent = `Not connected to ${state.broker}${state.error ? `: ${state.error}` : ""}. Trying again.`;
    }
  }
  // The connection changes on its own: while Settings is open, its state is asked now and then.
  let mqttPoll = null;
  const pollMqtt = (on) => {
    clearInterval(mqttPoll);
    mqttPoll = on ? setInterval(() => conn.request({ command: "request_status" }).catch(() => {}), 3000) : null;
  };

  // --- calibration --------------------------------------------------------------
  const calibrateForm = $("#calibrate-form");
  const what = $("#c-what");
  const valueField = $("#c-value").closest(".field");
  const showValueField = () => { valueField.hidden = !NEEDS_VALUE.has(what.value); };
  what.addEventListener("change", showValueField);
  showValueField();

  function showCalibration(c) {
    if (!c) return;
    const zero = c.zero_volts === null || c.zero_volts === undefined ? "followed" : `${c.zero_volts.toFixed(4)} V`;
    $("#calibration").textContent = `Now: current gain ${formatNumber(c.current_gain, 4)}, `
      + `${formatNumber(c.voltage)} V, power factor ${formatNumber(c.power_factor)}, zero ${zero}.`;
  }

  onSubmit(calibrateForm, async () => {
    const request = { command: "calibrate", what: what.value };
    if (NEEDS_VALUE.has(what.value)) {
      request.value = parseNumber($("#c-value").value);
      if (!Number.isFinite(request.value)) {
        fieldError(calibrateForm, "value", "Type the value your meter shows, as a number.");
        return;
      }
    }
    const answer = await conn.request(request);
    showCalibration(answer.calibration);
    notify("Calibrated.");
  });

  // --- simulated load, only under --simulate --------------------------------------
  const simulateForm = $("#simulate-form");
  onSubmit(simulateForm, async () => {
    const watts = parseNumber($("#sim-watts").value);
    if (!Number.isFinite(watts)) {
      fieldError(simulateForm, "watts", "Type a number of watts, for example 1000.");
      return;
    }
    await conn.request({ command: "simulate_load", watts });
    notify(`Simulated load set to ${formatNumber(watts)} W.`);
  });

  conn.on("response_status", (m) => {
    showMqtt(m.mqtt);
    simulateForm.hidden = m.simulate !== true;
    if (m.meter) showCalibration(m.meter.calibration);
    $("#about").textContent = `plugd ${m.version || ""}, node ${model.nodeName} (id ${model.selfId})`
      + (m.simulate ? ", simulated hardware" : "") + ".";
  });

  // --- password -----------------------------------------------------------------
  const passwordForm = $("#password-form");
  onSubmit(passwordForm, async () => {
    const values = Object.fromEntries(["old", "new", "repeat"].map((k) => [k, passwordForm.elements[k].value]));
    if (!values.old) fieldError(passwordForm, "old", "Type the password you use now.");
    if (!values.new) fieldError(passwordForm, "new", "Type the new password.");
    else if (values.new !== values.repeat) fieldError(passwordForm, "repeat", "The two new passwords differ.");
    if (!values.old || !values.new || values.new !== values.repeat) return;
    const answer = await conn.request({ command: "change_password", old: values.old, new: values.new });
    // Every other session ended; this one's cookie is renewed from the ticket, for reconnects.
    if (answer.ticket) await fetch(`/session?ticket=${encodeURIComponent(answer.ticket)}`, { cache: "no-store" });
    passwordForm.reset();
    $("#password-hint").hidden = true;
    notify("Password changed.");
  });

  // --- configuration file -----------------------------------------------------------
  const configForm = $("#config-form");
  $("[data-action=export]", configForm).addEventListener("click", () => {
    clearErrors(configForm);
    conn.request({ command: "export_config" }).then((m) => {
      const blob = new Blob([JSON.stringify(m.config, null, 2) + "\n"], { type: "application/json" });
      const link = el("a", { href: URL.createObjectURL(blob), download: exportName() });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    }).catch((err) => showApiError(configForm, err));
  });

  $("#import-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    event.target.value = "";  // the same file may be chosen again after a fix
    if (!file) return;
    clearErrors(configForm);
    let config;
    try {
      config = JSON.parse(await file.text());
    } catch (err) {
      formError(configForm, `${file.name} is not a JSON file: ${err.message}`);
      return;
    }
    if (config === null || typeof config !== "object" || Array.isArray(config)) {
      formError(configForm, `${file.name} does not hold a configuration (a JSON object).`);
      return;
    }
    try {
      await conn.request({ command: "import_config", config });
      notify(`Configuration imported from ${file.name}.`);
      loadSettings();
    } catch (err) {
      formError(configForm, `Nothing was imported: ${err.message}`);
    }
  });

  function exportName() {
    const day = new Date().toISOString().slice(0, 10);
    return `plugd-${String(model.nodeName || "plug").replace(/[^\w-]+/g, "_")}-${day}.json`;
  }

  conn.onOpen(() => { if (views.visible("settings")) loadSettings(); });
  views.register("settings", {
    shown: () => { loadSettings(); conn.request({ command: "request_status" }).catch(() => {}); pollMqtt(true); },
    hidden: () => pollMqtt(false),
  });
}
