// The Schedules view: the list with each one's next run in words, switching one on or off,
// the editor, and the plug's location for sunrise and sunset.
// Times are shown in the plug's own time zone (the daemon names it), whatever the browser's.
import { $, el } from "./dom.js";
import { dateText, parseNumber, zonedParts } from "./format.js";
import { clearErrors, fieldError, showApiError, whileBusy } from "./forms.js";
import { notify, reportError } from "./notify.js";

const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const SHORT = DAYS.map((d) => d.slice(0, 3));
const ACTIONS = { on: "Switch on", off: "Switch off", toggle: "Switch over" };
const REFRESH = 60000;  // ms: "today" becomes "yesterday" at midnight; the list is asked again this often

/** Date parts of a Unix time in zone `tz` (undefined: the browser's), and its date in words. */
function parts(seconds, tz) {
  const date = dateText(new Date(seconds * 1000), { day: "numeric", month: "short", ...(tz ? { timeZone: tz } : {}) });
  return { ...zonedParts(seconds, tz || undefined), date };
}

/** "today", "tomorrow", "on Friday" or "on 15 Jan", as `seconds` is seen from now in `tz`. */
function dayWords(seconds, tz) {
  const when = parts(seconds, tz);
  const now = Date.now() / 1000;
  for (let n = 0; n < 7; n++) {
    if (parts(now + n * 86400, tz).day === when.day) {
      return n === 0 ? "today" : n === 1 ? "tomorrow" : `on ${when.weekday}`;
    }
  }
  return `on ${when.date}`;
}

/** Days in words: "every day", "Mon–Fri", "Sat, Sun". */
export function daysText(days) {
  if (!days || !days.length || days.length === 7) return "every day";
  const runs = [];
  for (const d of [...days].sort((a, b) => a - b)) {
    const last = runs[runs.length - 1];
    if (last && last[last.length - 1] === d - 1) last.push(d); else runs.push([d]);
  }
  return runs.map((r) => (r.length > 2 ? `${SHORT[r[0]]}–${SHORT[r[r.length - 1]]}` : r.map((d) => SHORT[d]).join(", ")))
    .join(", ");
}

/** The next run in words: "today at 16:42, sunset − 30 min", or why there is none. */
export function nextText(s, tz) {
  if (!s.enabled) return "Off: it does not run until switched on.";
  const what = s.words || s.at;
  const plain = s.at !== "sunrise" && s.at !== "sunset" && !s.offset;
  if (s.next === null || s.next === undefined) {
    if (s.sun) {
      const verb = s.at === "sunrise" ? "rise" : "set";
      const resumes = s.resumes
        ? ` Next run ${dayWords(s.resumes, tz)} at ${parts(s.resumes, tz).time}, when it does again.` : "";
      return `The sun does not ${verb} here now (${s.sun}).${resumes}`;
    }
    return "No run ahead.";
  }
  const when = `${dayWords(s.next, tz)} at ${parts(s.next, tz).time}`;
  return `Next: ${plain ? when : `${when}, ${what}`}`;
}

export function startSchedules(conn, views) {
  const list = $("#schedule-list");
  const form = $("#schedule-form");
  const when = $("#sc-when");
  const at = $("#sc-time");
  const locationForm = $("#location-form");
  let schedules = [];
  let tz = null;
  let loaded = false;
  let editing = null;

  $("#sc-days").replaceChildren(...DAYS.map((name, i) => el("label", { class: "day" },
    el("input", { type: "checkbox", name: "day", value: i, "aria-label": name }), SHORT[i])));

  function load() {
    return conn.request({ command: "request_schedules" })
      .then((m) => { loaded = true; tz = m.timezone || null; showLocation(m.location); show(m.schedules); })
      .catch((err) => reportError(err, "Reading the schedules"));
  }

  function item(s) {
    const title = `${ACTIONS[s.action] || s.action} at ${s.words || s.at}`;
    const enabled = el("button", { type: "button", class: "switch", role: "switch",
                                   "aria-checked": s.enabled ? "true" : "false",
                                   "aria-label": `Schedule ${s.id} enabled` }, el("span", { class: "knob" }));
    enabled.addEventListener("click", () => save({ ...fields(s), enabled: !s.enabled }, enabled));
    const remove = el("button", { type: "button", class: "quiet danger" }, "Delete");
    remove.addEventListener("click", () => askDelete(remove, s));
    return el("li", { class: `card schedule${s.enabled ? "" : " disabled"}`, dataset: { schedule: s.id } },
      el("div", { class: "card-head" }, el("h3", {}, title), enabled),
      el("p", { class: "sentence days" }, daysText(s.days)),
      el("p", { class: `next${s.next === null && s.enabled ? " muted" : ""}`, "aria-live": "polite" }, nextText(s, tz)),
      el("div", { class: "actions" },
        el("button", { type: "button", class: "quiet", "aria-label": `Edit schedule ${s.id}`,
                       onclick: () => open(s) }, "Edit"),
        remove));
  }

  function show(items) {
    schedules = items;
    list.replaceChildren(...schedules.map(item));
    $("#schedules-empty").hidden = schedules.length > 0;
    $("#schedules-zone").textContent = `Times are the plug's local time${tz ? ` (${tz})` : ""}.`;
  }

  const fields = (s) => ({ id: s.id, enabled: s.enabled, days: s.days, at: s.at, offset: s.offset, action: s.action });

  async function save(schedule, busy) {
    if (busy) busy.disabled = true;
    try {
      await conn.request({ command: "save_schedule", schedule });
      await load();
    } catch (err) {
      reportError(err, "Saving the schedule");
    } finally {
      if (busy) busy.disabled = false;
    }
  }

  // Two taps: the first arms the button for a few seconds, the second deletes.
  function askDelete(button, s) {
    if (!button.classList.contains("armed")) {
      button.classList.add("armed");
      button.textContent = "Really delete?";
      setTimeout(() => { button.classList.remove("armed"); button.textContent = "Delete"; }, 4000);
      return;
    }
    conn.request({ command: "delete_schedule", id: s.id })
      .then(() => { notify("Schedule deleted."); return load(); })
      .catch((err) => reportError(err, "Deleting the schedule"));
  }

  // --- the editor -----------------------------------------------------------------------
  function showWhen() {
    at.hidden = when.value !== "time";
    at.required = !at.hidden;
  }
  when.addEventListener("change", showWhen);

  function open(s = null) {
    editing = s;
    clearErrors(form);
    $("#schedule-form-title").textContent = s ? `Edit schedule ${s.id}` : "New schedule";
    const sun = s && (s.at === "sunrise" || s.at === "sunset");
    when.value = s ? (sun ? s.at : "time") : "time";
    at.value = s && !sun ? s.at : "";
    $("#sc-offset").value = String(s ? s.offset : 0);
    for (const box of form.elements.day) box.checked = Boolean(s && s.days.includes(Number(box.value)));
    $("#sc-action").value = s ? s.action : "on";
    $("#sc-enabled").checked = s ? s.enabled : true;
    showWhen();
    form.hidden = false;
    form.scrollIntoView({ block: "nearest" });
    when.focus();
  }

  function close() {
    editing = null;
    form.hidden = true;
  }

  /** The schedule the form holds, or null after showing what is wrong under each field. */
  function read() {
    const offset = $("#sc-offset").value.trim() === "" ? 0 : Number($("#sc-offset").value.trim());
    const schedule = {
      enabled: $("#sc-enabled").checked,
      days: [...form.elements.day].filter((b) => b.checked).map((b) => Number(b.value)),
      at: when.value === "time" ? at.value : when.value,
      offset,
      action: $("#sc-action").value,
    };
    let ok = true;
    if (when.value === "time" && !/^\d\d:\d\d$/.test(at.value)) {
      fieldError(form, "at", "Choose a time of day.");
      ok = false;
    }
    if (!Number.isInteger(offset) || Math.abs(offset) > 720) {
      fieldError(form, "offset", "Type whole minutes between -720 and 720, for example -30.");
      ok = false;
    }
    if (editing) schedule.id = editing.id;
    return ok ? schedule : null;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const schedule = read();
    if (!schedule) return;
    await whileBusy(form, async () => {
      try {
        await conn.request({ command: "save_schedule", schedule });
        notify("Schedule saved.");
        close();
        await load();
      } catch (err) {
        showApiError(form, err);
      }
    });
  });
  $("[data-action=cancel]", form).addEventListener("click", () => close());
  $("#schedule-new").addEventListener("click", () => open());

  // --- the location -------------------------------------------------------------------
  function showLocation(where) {
    $("#location-state").textContent = where
      ? `Set: ${Math.abs(where.latitude)}° ${where.latitude >= 0 ? "N" : "S"}, `
        + `${Math.abs(where.longitude)}° ${where.longitude >= 0 ? "E" : "W"}.`
      : "Not set: schedules at sunrise or sunset need it.";
    if (!locationForm.contains(document.activeElement)) {
      $("#loc-lat").value = where ? String(where.latitude) : "";
      $("#loc-lon").value = where ? String(where.longitude) : "";
    }
  }

  locationForm.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(locationForm);
    const latitude = parseNumber($("#loc-lat").value);
    const longitude = parseNumber($("#loc-lon").value);
    let ok = true;
    if (!Number.isFinite(latitude)) { fieldError(locationForm, "location.latitude", "Type degrees, for example 52.52."); ok = false; }
    if (!Number.isFinite(longitude)) { fieldError(locationForm, "location.longitude", "Type degrees, for example 13.4."); ok = false; }
    if (!ok) return;
    whileBusy(locationForm, async () => {
      try {
        await conn.request({ command: "save_settings",
                             settings: { "location.latitude": latitude, "location.longitude": longitude } });
        notify("Location saved.");
        $("#loc-lat").blur();
        $("#loc-lon").blur();
        await load();
      } catch (err) {
        showApiError(locationForm, err);
      }
    });
  });

  // A run changes the next one: ask again when a schedule did something, and once a minute.
  conn.on("event", (m) => {
    const cause = m.event && String(m.event.cause || "");
    if (loaded && (cause.startsWith("schedule") || m.event.kind === "schedule")) load();
  });
  setInterval(() => { if (loaded && views.visible("schedules")) load(); }, REFRESH);
  conn.onOpen(() => { if (loaded || views.visible("schedules")) load(); });
  views.register("schedules", { shown: () => { load(); } });
}
