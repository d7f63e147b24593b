// How values, units and times read on the page.

/** The firmware counts seconds from 2000-01-01; we take it as UTC (its page assumed UTC+2). */
export const ESP_EPOCH = Date.UTC(2000, 0, 1) / 1000;
export const espToUnix = (seconds) => seconds + ESP_EPOCH;
export const espDate = (seconds) => new Date(espToUnix(seconds) * 1000);

export const RELATIONS = ["is", "is not", "is above", "is below", "is at most", "is at least"];

export const TYPE = { LONG: 0, SWITCH: 1, TEMP: 2, HUMID: 3, PRESS: 4, PERCENT: 5, GENERIC: 6, CLOCK: 7 };
const TYPE_UNITS = { [TYPE.TEMP]: "°C", [TYPE.HUMID]: "%", [TYPE.PRESS]: "hPa", [TYPE.PERCENT]: "%" };
// This plug's metered things are GENERIC on the wire; their units come from their ids.
const OWN_UNITS = { 2: "W", 3: "Wh", 5: "A", 6: "kWh", 7: "Wh" };
const OWN_DIGITS = { 2: 1, 3: 1, 5: 2, 6: 3, 7: 1 };

export const NO_VALUE = "—";

/** A thing's value as text with its unit; `thing` may carry type, text, valid; `own` marks ours. */
export function formatValue(thing, own = false) {
  if (thing.valid === false || thing.value === null || thing.value === undefined) return NO_VALUE;
  if (thing.type === TYPE.SWITCH) return thing.value ? "On" : "Off";
  if (thing.type === TYPE.CLOCK && thing.text) return clockValue(thing.text);
  const unit = (own && OWN_UNITS[thing.id]) || TYPE_UNITS[thing.type] || "";
  const digits = own && thing.id in OWN_DIGITS ? OWN_DIGITS[thing.id] : undefined;
  return joinUnit(formatNumber(thing.value, digits), unit);
}

export function formatNumber(value, digits) {
  if (typeof value !== "number" || !Number.isFinite(value)) return NO_VALUE;
  if (digits !== undefined) return value.toFixed(digits);
  return String(Math.round(value * 100) / 100);
}

const joinUnit = (text, unit) => (unit ? `${text} ${unit}` : text);

// Time is written in one way everywhere: how long ago for what just happened ("12 s ago"),
// else in the reader's own locale through Intl.DateTimeFormat, never a hand-made date string.

const RECENT = 3600;  // s: younger than this reads as "… ago"
const FORMATS = new Map();

/** A cached Intl.DateTimeFormat in the reader's locale; a zone the browser does not know
 * falls back to the browser's own rather than failing the view. */
function formatter(options) {
  const key = JSON.stringify(options);
  if (!FORMATS.has(key)) {
    let format;
    try {
      format = new Intl.DateTimeFormat(undefined, options);
    } catch {
      const { timeZone, ...rest } = options;
      format = new Intl.DateTimeFormat(undefined, rest);
    }
    FORMATS.set(key, format);
  }
  return FORMATS.get(key);
}

/** "4 s ago", "3 min ago", "2 h ago", "5 d ago". */
export function ago(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "never";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** The time of day, with seconds unless `seconds` is false; `timeZone` names another zone. */
export function timeText(date, { seconds = true, timeZone } = {}) {
  return formatter({ hour: "2-digit", minute: "2-digit", ...(seconds ? { second: "2-digit" } : {}),
                     ...(timeZone ? { timeZone } : {}) }).format(date);
}

/** A date, or any other parts of one `options` names (Intl.DateTimeFormat's own options). */
export function dateText(date, options = { day: "numeric", month: "short", year: "numeric" }) {
  return formatter(options).format(date);
}

/** Date and time in full, for what is not recent or a title to hover over. */
export function dateTimeText(date) {
  return formatter({ dateStyle: "short", timeStyle: "medium" }).format(date);
}

/** A CLOCK thing's value ("H:MM:SS - D.M.YYYY", the node's own wall time, zone unknown) in
 * the reader's way of writing a date and time; a text of another shape as it came. */
export function clockValue(text) {
  const m = /^\s*(\d{1,2}):(\d{2}):(\d{2}) - (\d{1,2})\.(\d{1,2})\.(\d{4})\s*$/.exec(String(text));
  if (!m) return String(text);
  const [hour, minute, second, day, month, year] = m.slice(1).map(Number);
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  if (Number.isNaN(date.getTime()) || date.getUTCDate() !== day) return String(text);
  return formatter({ dateStyle: "short", timeStyle: "medium", timeZone: "UTC" }).format(date);
}

/** A moment: its time of day when that is today, else with its date. */
export function clockText(date, now = new Date()) {
  return date.toDateString() === now.toDateString() ? timeText(date) : dateTimeText(date);
}

/** When something happened: "12 s ago" within the hour, else as `clockText`. */
export function whenText(date, now = new Date()) {
  const age = (now - date) / 1000;
  return age >= -5 && age < RECENT ? ago(age) : clockText(date, now);
}

/** A chart's time tick, as fine as the `step` (s) between ticks needs: seconds, minutes, days. */
export function tickText(date, step) {
  if (step < 60) return timeText(date);
  if (step < 86400) return timeText(date, { seconds: false });
  return dateText(date, { weekday: "short", day: "numeric" });
}

/** The calendar day ("2026-12-06"), 24 h time ("16:42") and weekday of a Unix time in zone
 * `timeZone` (undefined: the browser's): to compare days and to match a schedule's own words. */
export function zonedParts(seconds, timeZone) {
  const format = formatter({ year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
                             minute: "2-digit", hourCycle: "h23", weekday: "long",
                             ...(timeZone ? { timeZone } : {}) });
  const p = Object.fromEntries(format.formatToParts(new Date(seconds * 1000)).map((x) => [x.type, x.value]));
  return { day: `${p.year}-${p.month}-${p.day}`, time: `${p.hour}:${p.minute}`, weekday: p.weekday };
}

/** Parse what a person typed as a number ("18", "18.5", "18,5"); NaN when it is not one. */
export function parseNumber(text) {
  const trimmed = String(text).trim().replace(",", ".");
  if (!/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(trimmed)) return NaN;
  return Number(trimmed);
}
