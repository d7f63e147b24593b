// The Nodes view: this plug and every node heard on the mesh, with their things, live.
import { $, el, oncePerFrame } from "./dom.js";
import { ago, formatValue } from "./format.js";
import { model, nodeAge } from "./model.js";
import { reportError } from "./notify.js";

export function startNodes(conn, views) {
  const list = $("#node-list");

  function thingRows(node) {
    if (node.self) {
      return [...model.things.values()].map((t) => [t.name, formatValue(t, true)]);
    }
    return (node.things || []).map((t) => [`thing ${t.id}`, formatValue(t)]);
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
        el("tbody", {}, thingRows(node).map(([name, value]) =>
          el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, value))))));
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

  conn.on("response_nodes", draw);
  conn.on("node_update", draw);
  conn.on("thing_update", draw);
  conn.on("response_things", draw);
  conn.onOpen(() => conn.request({ command: "request_nodes" }).catch((e) => reportError(e, "Reading the nodes")));
  setInterval(draw, 1000);  // "seen N s ago" counts on
  views.register("nodes", { shown: draw });
}
