// The Energy view: bars of a day (per hour), a week and a month (per day), a year (per month),
// with their total and cost, drawn by uPlot. Buckets come from request_energy; their starts are
// the plug's local hours, days and months, and are laid out here on this device's calendar
// (the same zone when the phone is at home). A missing bucket (the plug was off) is a 0 bar.
import { UplotChart } from "./chart.js";
import { $, $$ } from "./dom.js";
import { dateText, timeText } from "./format.js";
import { reportError } from "./notify.js";

const HEIGHT = 240;
const SPANS = {
  day: { period: "hour", label: (d) => dateText(d, { weekday: "short", day: "numeric", month: "short", year: "numeric" }) },
  week: { period: "day", label: (d) => `Week of ${dateText(d)}` },
  month: { period: "day", label: (d) => dateText(d, { month: "long", year: "numeric" }) },
  year: { period: "month", label: (d) => dateText(d, { year: "numeric" }) },
};

const secs = (date) => Math.floor(date.getTime() / 1000);

/** The first day of the span holding `date`, `step` spans later, at local midnight. */
function spanStart(span, date, step = 0) {
  const y = date.getFullYear(), m = date.getMonth(), d = date.getDate();
  if (span === "day") return new Date(y, m, d + step);
  if (span === "week") return new Date(y, m, d - ((date.getDay() + 6) % 7) + 7 * step);  // Monday
  if (span === "month") return new Date(y, m + step, 1);
  return new Date(y + step, 0, 1);
}

/** The buckets' starts (s) from `first` to before `end`: hours (23 or 25 on a DST day), days or
 * months, each with its axis label. */
export function slots(span, first, end) {
  const out = [];
  if (span === "day") {
    for (let t = secs(first); t < secs(end); t += 3600) {
      out.push({ start: t, label: dateText(new Date(t * 1000), { hour: "numeric" }) });
    }
  } else if (span === "year") {
    for (let m = 0; m < 12; m++) {
      const d = new Date(first.getFullYear(), m, 1);
      out.push({ start: secs(d), label: dateText(d, { month: "narrow" }) });
    }
  } else {
    for (let d = new Date(first); d < end; d = new Date(d.getFullYear(), d.getMonth(), d.getDate() + 1)) {
      out.push({ start: secs(d), label: span === "week" ? dateText(d, { weekday: "narrow" }) : dateText(d, { day: "numeric" }) });
    }
  }
  return out;
}

function energyText(wh) {
  if (wh >= 1000) return `${(wh / 1000).toFixed(wh >= 100000 ? 0 : 2)} kWh`;
  return `${wh.toFixed(wh >= 100 ? 0 : 1)} Wh`;
}

function costText(cost, currency) {
  return `${cost.toFixed(2)}${currency ? ` ${currency}` : ""}`;
}

export class EnergyChart extends UplotChart {
  constructor(box, note) {
    super(box, note, HEIGHT);
    this.slots = [];
    this.values = [];
    this.price = 0;
    this.currency = "";
  }

  /** Show `buckets` ([[start, Wh], ...]) laid on `slots`. */
  show(slots, buckets) {
    const byStart = new Map(buckets.map(([start, wh]) => [start, wh]));
    this.slots = slots;
    this.values = slots.map((s) => byStart.get(s.start) ?? 0);
    // A bucket with no slot (a time zone apart): add it to the slot it falls in.
    const starts = slots.map((s) => s.start);
    const known = new Set(starts);
    for (const [start, wh] of buckets) {
      if (known.has(start)) continue;
      const i = starts.findIndex((s, k) => s <= start && (k + 1 === starts.length || starts[k + 1] > start));
      if (i >= 0) this.values[i] += wh;
    }
    this.box.dataset.bars = String(this.values.length);
    this.rebuild();
  }

  draw() {
    if (!this.visible() || !window.uPlot) return;
    const data = [this.slots.map((_, i) => i), this.values];
    if (!this.plot) this.build(data);
    else this.plot.setData(data);
    this.box.dataset.drawn = String(this.values.length);
  }

  build(data) {
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim();
    const axis = { stroke: color("--muted"), grid: { stroke: color("--line"), width: 1 },
                   ticks: { stroke: color("--line"), width: 1 }, font: "12px system-ui, sans-serif" };
    const labels = this.slots.map((s) => s.label);
    const every = Math.max(1, Math.ceil(labels.length / Math.max(4, Math.floor(this.box.clientWidth / 28))));
    this.plot = new window.uPlot({
      width: this.box.clientWidth,
      height: HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      scales: {
        x: { time: false, range: () => [-0.5, Math.max(0.5, labels.length - 0.5)] },
        y: { range: (u, min, max) => [0, Math.max(1, (max || 0) * 1.15)] },
      },
      series: [{}, { label: "Energy", stroke: color("--accent"), fill: color("--accent"), width: 0,
                     paths: window.uPlot.paths.bars({ size: [0.7, 60] }), points: { show: false } }],
      axes: [{ ...axis, splits: () => labels.map((_, i) => i).filter((i) => i % every === 0),
               values: (u, ticks) => ticks.map((i) => labels[i] ?? "") },
             { ...axis, size: 60, values: (u, ticks) => ticks.map((wh) => energyText(wh)) }],
      hooks: { setCursor: [(u) => this.readout(u.cursor.idx)] },
    }, data, this.box);
  }

  readout(i) {
    if (i === null || i === undefined || this.slots[i] === undefined) { this.note.textContent = ""; return; }
    const wh = this.values[i];
    const when = new Date(this.slots[i].start * 1000);
    const at = this.slots.length > 12 && this.slots[1] && this.slots[1].start - this.slots[0].start < 7200
      ? timeText(when, { seconds: false })
      : dateText(when);
    this.note.textContent = `${at}: ${energyText(wh)}${this.price ? `, ${costText(wh / 1000 * this.price, this.currency)}` : ""}`;
  }
}

export function startEnergy(conn, views) {
  const chart = new EnergyChart($("#energy-chart"), $("#energy-note"));
  let span = "day";
  let anchor = new Date();
  let asked = 0;

  async function load() {
    const first = spanStart(span, anchor);
    const end = spanStart(span, anchor, 1);
    const { period } = SPANS[span];
    $("#energy-title-span").textContent = SPANS[span].label(first);
    $("#energy-next").disabled = end > new Date();
    const mine = ++asked;
    const query = `period=${period}&from=${secs(first)}&to=${secs(end)}`;
    $("#energy-csv").href = `api/energy.csv?${query}`;
    try {
      const m = await conn.request({ command: "request_energy", period, from: secs(first), to: secs(end) });
      if (mine !== asked) return;  // a newer choice was made meanwhile
      chart.price = m.pricePerKwh || 0;
      chart.currency = m.currency || "";
      chart.show(slots(span, first, end), Array.isArray(m.buckets) ? m.buckets : []);
      $("#energy-total").textContent = energyText(m.totalWh || 0);
      $("#energy-cost").textContent = m.pricePerKwh ? costText(m.cost || 0, m.currency) : "set [energy] price_per_kwh";
    } catch (err) {
      if (!err.unsupported) reportError(err, "Reading the energy history");
    }
  }

  for (const button of $$("#energy-spans button")) {
    button.addEventListener("click", () => {
      span = button.dataset.span;
      for (const b of $$("#energy-spans button")) b.setAttribute("aria-pressed", String(b === button));
      load();
    });
  }
  $("#energy-prev").addEventListener("click", () => { anchor = spanStart(span, anchor, -1); load(); });
  $("#energy-next").addEventListener("click", () => {
    const next = spanStart(span, anchor, 1);
    anchor = next > new Date() ? new Date() : next;
    load();
  });

  conn.onOpen(() => { if (views.current === "energy") load(); });
  views.register("energy", { shown: () => load() });
  return { chart, load };
}
