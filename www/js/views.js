// The views. The address's hash names the one shown, so back, forward and bookmarks work.
import { $, $$ } from "./dom.js";

const NAMES = ["dashboard", "nodes", "recipes", "schedules", "energy", "events", "settings"];

export const views = {
  current: null,
  hooks: new Map(),

  /** `hooks.shown()` runs each time the view is brought up (draw what changed meanwhile);
   * `hooks.hidden()` when another view replaces it (stop what only it needs). */
  register(name, hooks) { this.hooks.set(name, hooks); },

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
    if (hooks && hooks.shown) hooks.shown();
  },

  start() {
    const route = () => this.show(location.hash.slice(1));
    window.addEventListener("hashchange", route);
    route();
  },

  visible(name) { return this.current === name && !$(`#view-${name}`).hidden; },
};
