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
  if (thing.type === TYPE.CLOCK && thing.text) return thing.text;
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

/** "4 s ago", "3 min ago", "2 h ago", "5 d ago". */
export function ago(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "never";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function timeText(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function dateTimeText(date) {
  return date.toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
}

/** Parse what a person typed as a number ("18", "18.5", "18,5"); NaN when it is not one. */
export function parseNumber(text) {
  const trimmed = String(text).trim().replace(",", ".");
  if (!/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(trimmed)) return NaN;
  return Number(trimmed);
}
