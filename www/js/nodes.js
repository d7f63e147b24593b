// The Nodes view: this plug and every node heard on the mesh, with their things, live; a peer's
// value is shown with the name and unit a person gave it, its plugd sent, or (ids 1 to 4) the
// meaning the ESP8266 plug firmware gives it, marked as assumed; a person names it here.
import { $, el, oncePerFrame } from "./dom.js";
import { ago, clockValue, formatNumber, formatValue } from "./format.js";
import { clearErrors, fieldError, showApiError, whileBusy } from "./forms.js";
import { model, nodeAge, shownName, withUnit } from "./model.js";
import { notify, reportError } from "./notify.js";

export function startNodes(conn, views) {
  const list = $("#node-list");
  const form = $("#label-form");
  let labelling = null;  // {node, thing}: the value the form names

  function peerValue(t) {
    if (t.kind === "switch") return t.value ? "On" : "Off";
    if (t.kind === "clock" && t.text) return clockValue(t.text);
    return withUnit(formatNumber(t.value), t.unit);
  }

  function thingRows(node) {
    if (node.self) {
      return [...model.things.values()].map((t) => [t.label || t.name, formatValue(t, true), null]);
    }
    return (node.things || []).map((t) => {
      const invite = t.origin === "unlabelled" ? "Name it" : t.origin === "label" ? "Rename" : "Label";
      const button = el("button", { type: "button", class: "quiet label-it",
                                    "aria-label": `${invite}: value ${t.id} of ${node.name}`,
                                    onclick: () => openForm(node, t) }, invite);
      return [shownName(t), peerValue(t), button];
    });
  }

  function card(node) {
    const state = node.self ? "this plug" : node.online ? "online" : "offline";
    const seen = node.self ? "" : ` · seen ${ago(nodeAge(node))}`;
    const address = node.address ? ` · ${node.address}` : "";
    return el("li", { class: `card node${node.online || node.self ? "" : " offline"}`, dataset: { node: node.id } },
      el("div", { class: "card-head" },
        el("h3", {}, node.name),
        el("span", { class: `badge ${node.self || node.online ? "good" : "dim"}` }, state)),
      el("p", { class: "muted" }, `id ${node.id}${address}${seen}`),
      el("table", { class: "things" },
        el("tbody", {}, thingRows(node).map(([name, value, button]) =>
          el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, value),
             el("td", {}, button || ""))))));
  }

  function order(a, b) {
    return (b.self === true) - (a.self === true) || (b.online === true) - (a.online === true)
      || String(a.name).localeCompare(String(b.name)) || a.id - b.id;
  }

  const draw = oncePerFrame(() => {
    if (!views.visible("nodes")) return;
    const nodes = [...model.nodes.values()].sort(order);
    list.replaceChildren(...nodes.map(card));
    const online = nodes.filter((n) => !n.self && n.online).length;
    const peers = nodes.filter((n) => !n.self).length;
    $("#nodes-summary").textContent = peers
      ? `${online} of ${peers} other ${peers === 1 ? "node" : "nodes"} online.`
      : "No other node heard yet: nodes on this network appear here as they broadcast.";
  });

  function openForm(node, t) {
    labelling = { node: node.id, thing: t.id };
    clearErrors(form);
    $("#label-form-what").textContent = `Value ${t.id} of ${node.name} (${node.id}), now ${peerValue(t)}.`;
    const named = t.origin !== "unlabelled";
    $("#l-name").value = named ? t.label : "";
    $("#l-unit").value = named ? t.unit : "";
    $("#l-kind").replaceChildren(...model.kinds.map((k) => el("option", { value: k }, k)));
    $("#l-kind").value = named ? t.kind : "generic";
    $("[data-action=forget]", form).hidden = t.origin !== "label";
    form.hidden = false;
    form.scrollIntoView({ block: "nearest" });
    $("#l-name").focus();
  }

  function closeForm() {
    labelling = null;
    form.hidden = true;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const label = { nodeId: labelling.node, thingId: labelling.thing, name: $("#l-name").value.trim(),
                    unit: $("#l-unit").value.trim(), kind: $("#l-kind").value };
    if (label.name === "") { fieldError(form, "label.name", "Give the value a name."); return; }
    await whileBusy(form, async () => {
      try {
        await conn.request({ command: "save_label", label });
        notify(`Value ${label.thingId} is now called "${label.name}".`);
        closeForm();
      } catch (err) {
        showApiError(form, err);
      }
    });
  });
  $("[data-action=cancel]", form).addEventListener("click", closeForm);
  $("[data-action=forget]", form).addEventListener("click", () => {
    const { node, thing } = labelling;
    conn.request({ command: "delete_label", nodeId: node, thingId: thing })
      .then(() => { notify(`The label of value ${thing} is removed.`); closeForm(); })
      .catch((err) => showApiError(form, err));
  });

  conn.on("response_nodes", draw);
  conn.on("node_update", draw);
  conn.on("thing_update", draw);
  conn.on("response_things", draw);
  conn.onOpen(() => conn.request({ command: "request_nodes" }).catch((e) => reportError(e, "Reading the nodes")));
  setInterval(draw, 1000);  // "seen N s ago" counts on
  views.register("nodes", { shown: draw });
}
