// The Recipes view: the list in evaluation order, reordering, deleting, and the editor.
import { $, el } from "./dom.js";
import { formatNumber, RELATIONS } from "./format.js";
import { model, nodeLabel, shownName, thingLabel, withUnit } from "./model.js";
import { notify, reportError } from "./notify.js";
import { recipeForm } from "./recipe-form.js";

const REFRESH_GAP = 1000;  // ms: `matching` and `seen` are not pushed, so ask again, this often at most

export function startRecipes(conn, views) {
  const list = $("#recipe-list");
  let recipes = [];
  let loaded = false;
  const form = recipeForm(conn, () => load());

  function load() {
    return conn.request({ command: "request_recipes" })
      .then((m) => { loaded = true; show(m.recipes); })
      .catch((err) => reportError(err, "Reading the recipes"));
  }

  function setTo(r) {
    const target = model.things.get(r.localThingId);
    const name = r.local ? r.local.label : thingLabel(model.selfId, r.localThingId);
    const to = !target || target.type === 1 ? (r.localValue ? "On" : "Off") : formatNumber(r.localValue);
    return `set ${name} to ${to}`;
  }

  // The source's name as the daemon resolved it (a person's label, its plugd's, or assumed).
  function sourceName(r) {
    return r.source ? shownName({ ...r.source, id: r.sourceThingId }) : thingLabel(r.sourceNodeId, r.sourceThingId);
  }

  function item(r, i) {
    const matching = r.matching === true;
    const seen = r.seen === null || r.seen === undefined
      ? "No value seen from its source since the plug started."
      : `Last value seen: ${formatNumber(r.seen)}.`;
    const remove = el("button", { type: "button", class: "quiet danger" }, "Delete");
    remove.addEventListener("click", () => askDelete(remove, r));
    return el("li", { class: `card recipe${matching ? " matching" : ""}`, dataset: { recipe: r.id } },
      el("div", { class: "card-head" },
        el("h3", {}, r.name),
        el("span", { class: `badge ${matching ? "good" : "dim"}` }, matching ? "matches now" : "does not match")),
      el("p", { class: "sentence" },
        `If ${nodeLabel(r.sourceNodeId)}: ${sourceName(r)} `
        + `${RELATIONS[r.relation] || `relation ${r.relation}`} `
        + `${withUnit(formatNumber(r.targetValue), r.source ? r.source.unit : "")}, ${setTo(r)}.`),
      el("p", { class: "muted seen" }, seen),
      el("div", { class: "actions" },
        el("button", { type: "button", class: "quiet", "aria-label": `Move ${r.name} up`, title: "Move up",
                       disabled: i === 0, onclick: () => move(r, i - 1) }, "↑"),
        el("button", { type: "button", class: "quiet", "aria-label": `Move ${r.name} down`, title: "Move down",
                       disabled: i === recipes.length - 1, onclick: () => move(r, i + 1) }, "↓"),
        el("button", { type: "button", class: "quiet", onclick: () => form.open(r) }, "Edit"),
        remove));
  }

  function show(items) {
    recipes = items;
    list.replaceChildren(...recipes.map(item));
    $("#recipes-empty").hidden = recipes.length > 0;
  }

  function move(r, index) {
    conn.request({ command: "move_recipe", id: r.id, index })
      .then((m) => show(m.recipes))
      .catch((err) => reportError(err, "Moving the recipe"));
  }

  // Two taps: the first arms the button for a few seconds, the second deletes.
  function askDelete(button, r) {
    if (!button.classList.contains("armed")) {
      button.classList.add("armed");
      button.textContent = "Really delete?";
      setTimeout(() => { button.classList.remove("armed"); button.textContent = "Delete"; }, 4000);
      return;
    }
    conn.request({ command: "delete_recipe", id: r.id })
      .then(() => { notify(`Recipe "${r.name}" deleted.`); return load(); })
      .catch((err) => reportError(err, "Deleting the recipe"));
  }

  // A value from a recipe's source may change whether it matches: ask again, at most once a second.
  let refreshTimer = null;
  let stale = false;
  function sourceChanged(nodeId, thingId) {
    if (!recipes.some((r) => r.sourceNodeId === nodeId && (thingId === null || r.sourceThingId === thingId))) return;
    if (!views.visible("recipes")) { stale = true; return; }
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => { refreshTimer = null; load(); }, REFRESH_GAP);
  }
  conn.on("node_update", (m) => sourceChanged(m.node.id, null));
  conn.on("thing_update", (m) => sourceChanged(m.nodeId, m.thingId));

  $("#recipe-new").addEventListener("click", () => form.open());
  conn.onOpen(() => { if (loaded || views.visible("recipes")) load(); });
  views.register("recipes", { shown: () => { if (!loaded || stale) { stale = false; load(); } } });
}
