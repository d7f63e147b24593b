// What the page's uPlot charts share: drawn only while visible (uPlot needs a width), fitted to
// their box when it resizes, and built again when the system turns dark or light.
export class UplotChart {
  constructor(box, note, height) {
    this.box = box;
    this.note = note;
    this.height = height;
    this.plot = null;
    new ResizeObserver(() => this.fit()).observe(box);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.rebuild());
  }

  visible() { return this.box.offsetParent !== null && this.box.clientWidth > 0; }

  fit() {
    if (this.plot && this.visible()) this.plot.setSize({ width: this.box.clientWidth, height: this.height });
    else this.draw();
  }

  rebuild() {
    if (this.plot) { this.plot.destroy(); this.plot = null; }
    this.draw();
  }
}
