// The dashboard's chart: power over the last 10 minutes, one point a second, or over an hour,
// a day or two days, one point a minute (mean, with the lowest and highest as faint lines),
// drawn by uPlot (vendored in www/vendor/uplot, loaded as window.uPlot). Times are the plug's
// clock, in Unix seconds, so history from the daemon and live points line up even if this
// device's clock is off.
import { UplotChart } from "./chart.js";
import { dateText, espToUnix, tickText, timeText } from "./format.js";

export const SPAN = 600;  // seconds kept and shown, one point a second
const HEIGHT = 220;

export class PowerChart extends UplotChart {
  constructor(box, note) {
    super(box, note, HEIGHT);
    this.xs = [];
    this.ys = [];
    this.lows = null;  // per minute: the lowest and highest of each minute
    this.highs = null;
    this.span = SPAN;
  }

  /** Show one point a minute over `span` seconds: [seconds since 2000, mean, lowest, highest]. */
  fillMinutes(points, span) {
    this.span = span;
    this.xs = points.map((p) => espToUnix(p[0]));
    this.ys = points.map((p) => (typeof p[1] === "number" ? p[1] : null));
    this.lows = points.map((p) => (typeof p[2] === "number" ? p[2] : null));
    this.highs = points.map((p) => (typeof p[3] === "number" ? p[3] : null));
    this.rebuild();
  }

  /** Replace what is drawn with the daemon's history, keeping live points newer than it. */
  fill(history) {
    if (this.lows) {  // back from minutes to seconds
      this.lows = this.highs = null;
      this.span = SPAN;
      this.xs = [];
      this.ys = [];
      if (this.plot) { this.plot.destroy(); this.plot = null; }
    }
    const xs = [];
    const ys = [];
    for (const [esp, watts] of history) {
      xs.push(espToUnix(esp));
      ys.push(typeof watts === "number" ? watts : null);
    }
    const last = xs.length ? xs[xs.length - 1] : -Infinity;
    this.xs.forEach((x, i) => {
      if (x > last) { xs.push(x); ys.push(this.ys[i]); }
    });
    this.xs = xs;
    this.ys = ys;
    this.trim();
    this.draw();
  }

  /** One point at `x` (Unix s, the plug's clock); null draws a gap. */
  add(x, watts) {
    if (this.lows) return;  // minutes are fetched again each minute
    if (this.xs.length && x <= this.xs[this.xs.length - 1]) return;
    this.xs.push(x);
    this.ys.push(watts);
    this.trim();
    this.draw();
  }

  get lastX() { return this.xs.length ? this.xs[this.xs.length - 1] : null; }

  trim() {
    const from = this.xs.length ? this.xs[this.xs.length - 1] - this.span : 0;
    let drop = 0;
    while (drop < this.xs.length && this.xs[drop] <= from) drop++;
    if (drop) { this.xs.splice(0, drop); this.ys.splice(0, drop); }
  }

  draw() {
    this.box.dataset.points = this.xs.length;  // how much is shown, for tests and the curious
    if (!this.visible() || !window.uPlot) return;
    if (!this.plot) this.build();
    else this.plot.setData(this.data());
  }

  data() { return this.lows ? [this.xs, this.ys, this.lows, this.highs] : [this.xs, this.ys]; }

  build() {
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim();
    const axis = { stroke: color("--muted"), grid: { stroke: color("--line"), width: 1 },
                   ticks: { stroke: color("--line"), width: 1 }, font: "12px system-ui, sans-serif" };
    this.plot = new window.uPlot({
      width: this.box.clientWidth,
      height: HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        // Always the whole ten minutes, so a fresh page's few points sit at the right end.
        x: { time: true, range: (u, min, max) => [max - this.span, max] },
        // From zero, so a small load does not look like a big one.
        y: { range: (u, min, max) => [0, Math.max(10, (max || 0) * 1.15)] },
      },
      series: [{}, { label: "Power", stroke: color("--accent"), fill: this.lows ? undefined : color("--chart-fill"),
                     width: 2, points: { show: false } },
               ...(this.lows ? [{ label: "Lowest", stroke: color("--muted"), width: 1, dash: [4, 4], points: { show: false } },
                                { label: "Highest", stroke: color("--muted"), width: 1, points: { show: false } }] : [])],
      axes: [{ ...axis, space: 70, values: (u, ticks, i, space, step) => ticks.map((t) => tickText(new Date(t * 1000), step)) },
             { ...axis, size: 56, values: (u, ticks) => ticks.map(watts) }],
      hooks: { setCursor: [(u) => this.readout(u.cursor.idx)] },
    }, this.data(), this.box);
  }

  readout(i) {
    if (i === null || i === undefined || this.xs[i] === undefined) { this.note.textContent = ""; return; }
    const y = this.ys[i];
    const when = new Date(this.xs[i] * 1000);
    if (this.lows) {
      const at = dateText(when, { weekday: "short", hour: "2-digit", minute: "2-digit" });
      this.note.textContent = y === null ? `${at}: no reading`
        : `${at}: ${y.toFixed(0)} W (${this.lows[i].toFixed(0)}–${this.highs[i].toFixed(0)} W)`;
      return;
    }
    this.note.textContent = `${timeText(when)}: ${y === null ? "no reading" : `${y.toFixed(0)} W`}`;
  }
}

/** An axis label short enough for a phone: "500 W", "1.5 kW". */
function watts(value) {
  return value >= 1000 ? `${+(value / 1000).toFixed(2)} kW` : `${+value.toFixed(1)} W`;
}
