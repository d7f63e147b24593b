// The dashboard's chart: power over the last 10 minutes, one point a second, drawn by uPlot
// (vendored in www/vendor/uplot, loaded as window.uPlot). Times are the plug's clock, in
// Unix seconds, so history from the daemon and live points line up even if this device's
// clock is off.
import { espToUnix, timeText } from "./format.js";

export const SPAN = 600;  // seconds kept and shown
const HEIGHT = 220;

export class PowerChart {
  constructor(box, note) {
    this.box = box;
    this.note = note;
    this.xs = [];
    this.ys = [];
    this.plot = null;
    new ResizeObserver(() => this.fit()).observe(box);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.rebuild());
  }

  /** Replace what is drawn with the daemon's history, keeping live points newer than it. */
  fill(history) {
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
    if (this.xs.length && x <= this.xs[this.xs.length - 1]) return;
    this.xs.push(x);
    this.ys.push(watts);
    this.trim();
    this.draw();
  }

  get lastX() { return this.xs.length ? this.xs[this.xs.length - 1] : null; }

  trim() {
    const from = this.xs.length ? this.xs[this.xs.length - 1] - SPAN : 0;
    let drop = 0;
    while (drop < this.xs.length && this.xs[drop] <= from) drop++;
    if (drop) { this.xs.splice(0, drop); this.ys.splice(0, drop); }
  }

  visible() { return this.box.offsetParent !== null && this.box.clientWidth > 0; }

  draw() {
    this.box.dataset.points = this.xs.length;  // how much is shown, for tests and the curious
    if (!this.visible() || !window.uPlot) return;
    if (!this.plot) this.build();
    else this.plot.setData([this.xs, this.ys]);
  }

  fit() {
    if (this.plot && this.visible()) this.plot.setSize({ width: this.box.clientWidth, height: HEIGHT });
    else this.draw();
  }

  rebuild() {
    if (this.plot) { this.plot.destroy(); this.plot = null; }
    this.draw();
  }

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
        x: { time: true, range: (u, min, max) => [max - SPAN, max] },
        // From zero, so a small load does not look like a big one.
        y: { range: (u, min, max) => [0, Math.max(10, (max || 0) * 1.15)] },
      },
      series: [{}, { label: "Power", stroke: color("--accent"), fill: color("--chart-fill"),
                     width: 2, points: { show: false } }],
      axes: [axis, { ...axis, size: 56, values: (u, ticks) => ticks.map(watts) }],
      hooks: { setCursor: [(u) => this.readout(u.cursor.idx)] },
    }, [this.xs, this.ys], this.box);
  }

  readout(i) {
    if (i === null || i === undefined || this.xs[i] === undefined) { this.note.textContent = ""; return; }
    const y = this.ys[i];
    this.note.textContent = `${timeText(new Date(this.xs[i] * 1000))}: ${y === null ? "no reading" : `${y.toFixed(0)} W`}`;
  }
}

/** An axis label short enough for a phone: "500 W", "1.5 kW". */
function watts(value) {
  return value >= 1000 ? `${+(value / 1000).toFixed(2)} kW` : `${+value.toFixed(1)} W`;
}
