// The Settings view: this plug (name, broadcast, display, price, location); switching and
// protection; the mesh key; Home Assistant and MQTT; calibration; simulated load; password; the
// configuration as a file.
import { $, $$, el } from "./dom.js";
import { formatNumber, parseNumber } from "./format.js";
import { clearErrors, fieldError, formError, showApiError, whileBusy } from "./forms.js";
import { model } from "./model.js";
import { notify, reportError } from "./notify.js";

const NEEDS_VALUE = new Set(["current", "power", "voltage"]);
const KEY_BYTES = 24;  // as `plugd --gen-key`: 192 random bits, 32 characters

/** Submit handler: clear old errors, run `work` with the buttons disabled, show a refusal. */
function onSubmit(form, work) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    whileBusy(form, () => run(form, work));
  });
}

async function run(form, work) {
  try {
    await work();
  } catch (err) {
    showApiError(form, err);
  }
}

// A form's settings are its inputs named by key ("protection.max_power"); the input says the
// type: a checkbox is true or false, a range or a decimal or numeric input a number.
const settingInputs = (form) => $$("input[name*='.'], select[name*='.']", form);
const isNumeric = (input) => input.type === "range" || ["decimal", "numeric"].includes(input.inputMode);

/** Show the settings' values; a secret's input stays empty and says whether one is set. One the
 * configuration file pins is shown read-only, with the file that sets it. */
function fillForm(form, answer) {
  const { settings = {}, secrets = {}, fixed = {} } = answer;
  for (const input of settingInputs(form)) {
    const key = input.name;
    if (key in secrets) {
      input.value = "";
      input.placeholder = secrets[key] ? "set (type to change)" : "none";
    } else if (input.type === "checkbox") {
      input.checked = Boolean(settings[key]);
    } else if (key in settings) {
      input.value = String(settings[key]);
    }
    pin(input, fixed[key]);
  }
}

function pin(input, where) {
  const field = input.closest(".field");
  input.disabled = Boolean(where);
  let note = $(".fixed-note", field);
  if (!where) {
    if (note) note.remove();
    return;
  }
  if (!note) {
    note = el("p", { class: "help fixed-note" });
    $(".field-error", field).before(note);
  }
  note.textContent = `Set in ${where}: change it there.`;
}

/** The form's settings as the daemon takes them, or null after marking what is not a number.
 * Pinned ones are left out, and a secret left empty keeps the one set. */
function readForm(form) {
  const settings = {};
  let ok = true;
  for (const input of settingInputs(form)) {
    if (input.disabled) continue;
    if (input.type === "checkbox") {
      settings[input.name] = input.checked;
    } else if (isNumeric(input)) {
      const value = parseNumber(input.value);
      if (!Number.isFinite(value)) {
        fieldError(form, input.name, `Type a number${input.placeholder ? `, for example ${input.placeholder}` : ""}.`);
        ok = false;
      }
      settings[input.name] = value;
    } else if (input.type === "password") {
      if (input.value) settings[input.name] = input.value;
    } else {
      settings[input.name] = input.tagName === "SELECT" ? input.value : input.value.trim();
    }
  }
  return ok ? settings : null;
}

export function startSettings(conn, views) {
  const settingsForm = $("#settings-form");
  const relayForm = $("#relay-settings-form");
  const mqttForm = $("#mqtt-form");
  const brightness = $("#s-brightness");
  const showBrightness = () => { $("#s-brightness-out").textContent = brightness.value; };
  brightness.addEventListener("input", showBrightness);

  function fill(form, answer) {
    fillForm(form, answer);
    if (form === settingsForm) showBrightness();
  }

  function loadSettings() {
    conn.request({ command: "request_settings" }).then((m) => {
      settingsForm.classList.remove("unavailable");
      for (const form of [settingsForm, relayForm, mqttForm]) fill(form, m);
      showMeshKey(m);
    }).catch((err) => {
      if (err.unsupported) {
        settingsForm.classList.add("unavailable");
        formError(settingsForm, "This plug cannot change these settings from the page yet.");
      } else reportError(err, "Reading the settings");
    });
  }

  /** Save the form's settings; the answer shows them as the daemon now has them. */
  async function save(form, settings) {
    const answer = await conn.request({ command: "save_settings", settings });
    if (form === keyForm) showMeshKey(answer);
    else fill(form, answer);
  }

  onSubmit(settingsForm, async () => {
    const settings = readForm(settingsForm);
    if (!settings) return;
    await save(settingsForm, settings);
    notify("Settings saved.");
  });

  onSubmit(relayForm, async () => {
    const settings = readForm(relayForm);
    if (!settings) return;
    await save(relayForm, settings);
    notify("Switching and protection saved.");
  });

  // --- the mesh key: whether one is set, never what --------------------------------
  const keyForm = $("#meshkey-form");
  const keyInput = $("#k-key");
  const clearKey = $("[data-action=clear-key]", keyForm);

  function showMeshKey(answer) {
    const set = Boolean(answer.secrets && answer.secrets["mesh.mesh_key"]);
    const where = answer.fixed && answer.fixed["mesh.mesh_key"];
    $("#meshkey-state").textContent = set
      ? "Set: this plug signs what it sends and takes only what is signed with the same key."
      : "Not set: nothing is signed, and the plug takes every node's values.";
    for (const b of $$("button", keyForm)) b.hidden = Boolean(where);
    clearKey.hidden = clearKey.hidden || !set;
    keyInput.type = "password";
    fillForm(keyForm, answer);
  }

  onSubmit(keyForm, async () => {
    if (!keyInput.value) {
      fieldError(keyForm, "mesh.mesh_key", "Type the key the other nodes use, or make one.");
      return;
    }
    await save(keyForm, { "mesh.mesh_key": keyInput.value });
    notify("Mesh key set: give every plugd node of this mesh the same one.");
  });

  // A new key is shown once, to copy to the other nodes; the plug never shows it again.
  $("[data-action=make-key]", keyForm).addEventListener("click", () => {
    const bytes = crypto.getRandomValues(new Uint8Array(KEY_BYTES));
    keyInput.value = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_");
    keyInput.type = "text";
    keyInput.select();
  });

  // Two taps: the first arms the button for a few seconds, the second clears the key.
  clearKey.addEventListener("click", () => {
    if (!clearKey.classList.contains("armed")) {
      clearKey.classList.add("armed");
      clearKey.textContent = "Really clear?";
      setTimeout(() => { clearKey.classList.remove("armed"); clearKey.textContent = "Clear the key"; }, 4000);
      return;
    }
    clearErrors(keyForm);
    whileBusy(keyForm, () => run(keyForm, async () => {
      await save(keyForm, { "mesh.mesh_key": "" });
      notify("Mesh key cleared: this plug no longer signs or checks.");
    }));
  });

  // --- Home Assistant and MQTT ------------------------------------------------------
  onSubmit(mqttForm, async () => {
    const settings = readForm(mqttForm);
    if (!settings) return;
    await save(mqttForm, settings);
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
