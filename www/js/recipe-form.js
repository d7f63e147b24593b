// The recipe editor: IF a node's thing stands in a relation to a value THEN set a thing of ours.
// The page checks what it can (a number is a number); the daemon checks the rest, and its
// answer "recipe.<field>: ..." is shown under that field. Nothing is saved on any error.
import { $, el } from "./dom.js";
import { formatNumber, formatValue, parseNumber, RELATIONS } from "./format.js";
import { clearErrors, fieldError, showApiError, whileBusy } from "./forms.js";
import { model, nodeLabel, settableThings, shownName, withUnit } from "./model.js";
import { notify } from "./notify.js";

const OTHER = "other";

export function recipeForm(conn, onSaved) {
  const form = $("#recipe-form");
  const node = $("#r-node");
  const nodeId = $("#r-node-id");
  const thing = $("#r-thing");
  const thingId = $("#r-thing-id");
  const local = $("#r-local");
  const valueSwitch = $("#r-value-switch");
  const value = $("#r-value");
  let editing = null;

  $("#r-relation").replaceChildren(...RELATIONS.map((words, i) => el("option", { value: i }, words)));

  function fillNodes(selected) {
    const nodes = [...model.nodes.values()].sort((a, b) => (b.self === true) - (a.self === true) || a.id - b.id);
    node.replaceChildren(
      ...nodes.map((n) => el("option", { value: n.id }, nodeLabel(n.id) + (n.self || n.online ? "" : ", offline"))),
      el("option", { value: OTHER }, "Another node: type its id"));
    const known = selected !== undefined && model.nodes.has(selected);
    node.value = selected === undefined ? String(nodes[0] ? nodes[0].id : OTHER) : known ? String(selected) : OTHER;
    nodeId.value = selected !== undefined && !known ? String(selected) : "";
    nodeId.hidden = node.value !== OTHER;
  }

  function fillThings(selected) {
    const chosen = model.nodes.get(Number(node.value));
    const things = !chosen ? [] : chosen.self
      ? [...model.things.values()].map((t) => [t.id, `${t.label || t.name}, now ${formatValue(t, true)}`])
      : (chosen.things || []).map((t) => [t.id, `${shownName(t)}, now ${withUnit(formatNumber(t.value), t.unit)}`]);
    thing.replaceChildren(...things.map(([id, text]) => el("option", { value: id }, text)),
                          el("option", { value: OTHER }, "Another thing: type its id"));
    const known = things.some(([id]) => id === selected);
    thing.value = selected === undefined ? String(things.length ? things[0][0] : OTHER) : known ? String(selected) : OTHER;
    thingId.value = selected !== undefined && !known ? String(selected) : "";
    thingId.hidden = thing.value !== OTHER;
  }

  function fillLocal(selected, selectedValue) {
    const things = settableThings();
    local.replaceChildren(...things.map((t) => el("option", { value: t.id }, t.label || t.name)));
    if (selected !== undefined) {
      if (!things.some((t) => t.id === selected)) local.append(el("option", { value: selected }, `thing ${selected}`));
      local.value = String(selected);
    }
    showValueInput(selectedValue);
  }

  function localIsSwitch() {
    const t = model.things.get(Number(local.value));
    return !t || t.type === 1;
  }

  function showValueInput(current) {
    const isSwitch = localIsSwitch();
    valueSwitch.hidden = !isSwitch;
    value.hidden = isSwitch;
    if (current !== undefined) {
      if (isSwitch) valueSwitch.value = current ? "1" : "0";
      else value.value = formatNumber(current);
    }
  }

  node.addEventListener("change", () => {
    nodeId.hidden = node.value !== OTHER;
    fillThings();
    if (!nodeId.hidden) nodeId.focus();
  });
  thing.addEventListener("change", () => {
    thingId.hidden = thing.value !== OTHER;
    if (!thingId.hidden) thingId.focus();
  });
  local.addEventListener("change", () => showValueInput());

  /** The recipe the form holds, or null after showing what is wrong under each field. */
  function read() {
    const problems = [];
    const need = (ok, field, text) => { if (!ok) problems.push([field, text]); };
    const wholeNumber = (select, input) => (select.value === OTHER
      ? (/^\s*\d+\s*$/.test(input.value) ? Number(input.value) : NaN) : Number(select.value));
    const recipe = {
      name: $("#r-name").value.trim(),
      sourceNodeId: wholeNumber(node, nodeId),
      sourceThingId: wholeNumber(thing, thingId),
      relation: Number($("#r-relation").value),
      targetValue: parseNumber($("#r-target").value),
      localThingId: Number(local.value),
      localValue: localIsSwitch() ? Number(valueSwitch.value) : parseNumber(value.value),
    };
    need(recipe.name !== "", "name", "Give the recipe a name.");
    need(Number.isInteger(recipe.sourceNodeId), "sourceNodeId", "Type the node's id: a whole number, as it broadcasts it.");
    need(Number.isInteger(recipe.sourceThingId), "sourceThingId", "Type the thing's id: a whole number.");
    need(Number.isFinite(recipe.targetValue), "targetValue", "Type a number, for example 19 or 18.5.");
    need(local.value !== "", "localThingId", "This plug has no thing a recipe can set.");
    need(Number.isFinite(recipe.localValue), "localValue", "Type a number.");
    for (const [field, text] of problems) fieldError(form, field, text);
    if (editing) recipe.id = editing.id;
    return problems.length ? null : recipe;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const recipe = read();
    if (!recipe) return;
    await whileBusy(form, async () => {
      try {
        await conn.request({ command: "save_recipe", recipe });
        notify(`Recipe "${recipe.name}" saved.`);
        close();
        onSaved();
      } catch (err) {
        showApiError(form, err);
      }
    });
  });
  $("[data-action=cancel]", form).addEventListener("click", () => close());

  function open(recipe = null) {
    editing = recipe;
    clearErrors(form);
    $("#recipe-form-title").textContent = recipe ? `Edit "${recipe.name}"` : "New recipe";
    $("#r-name").value = recipe ? recipe.name : "";
    fillNodes(recipe ? recipe.sourceNodeId : undefined);
    fillThings(recipe ? recipe.sourceThingId : undefined);
    $("#r-relation").value = String(recipe ? recipe.relation : 3);
    $("#r-target").value = recipe ? formatNumber(recipe.targetValue) : "";
    fillLocal(recipe ? recipe.localThingId : undefined, recipe ? recipe.localValue : 1);
    form.hidden = false;
    form.scrollIntoView({ block: "nearest" });
    $("#r-name").focus();
  }

  function close() {
    editing = null;
    form.hidden = true;
  }

  return { open, close, get isOpen() { return !form.hidden; } };
}
