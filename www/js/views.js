// The views. The address's hash names the one shown, so back, forward and bookmarks work.
import { $, $$ } from "./dom.js";

const NAMES = ["dashboard", "nodes", "recipes", "schedules", "energy", "events", "settings"];

export const views = {
  current: null,
  hooks: new Map(),

  /** `hooks.shown()` runs each time the view is brought up (draw what changed meanwhile);
   * `hooks.hidden()` when another view replaces it (stop what only it needs). */
  register(name, hooks) { this.hooks.set(name, hooks); },

  /** A view whose module is loaded, and `start` run, the first time it is shown. */
  loaders: new Map(),
  later(name, start) { this.loaders.set(name, start); },

  show(name) {
    if (!NAMES.includes(name)) name = NAMES[0];
    const before = this.hooks.get(this.current);
    if (this.current !== name && before && before.hidden) before.hidden();
    this.current = name;
    for (const section of $$("main > .view")) section.hidden = section.id !== `view-${name}`;
    for (const link of $$(".tabs a")) {
      if (link.dataset.view === name) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    const hooks = this.hooks.get(name);
    const start = this.loaders.get(name);
    if (!hooks && start) {
      this.loaders.delete(name);
      start().then(() => { if (this.current === name) this.show(name); })
        .catch((err) => { this.loaders.set(name, start); console.error(`The ${name} view did not load`, err); });
      return;
    }
    if (hooks && hooks.shown) hooks.shown();
  },

  start() {
    const route = () => this.show(location.hash.slice(1));
    window.addEventListener("hashchange", route);
    route();
  },

  visible(name) { return this.current === name && !$(`#view-${name}`).hidden; },
};
