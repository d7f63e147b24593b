// What the page knows of this plug and the mesh, kept current from answers and pushes.
// Views read it; only the handlers here write it (they run before the views' handlers).

export const model = {
  selfId: null,
  nodeName: "",
  things: new Map(),  // id -> {id, name, type, value, override, valid, last_updated, text?}
  nodes: new Map(),   // id -> a node as request_nodes gives it, plus `heardAt` (page clock, s)
  labels: [],         // the labels people gave peers' values: {nodeId, thingId, name, unit, kind}
  kinds: [],          // the kinds a label may have
  status: null,       // the last response_status
  lastUpdate: null,   // firmware seconds of the newest value of ours
};

const now = () => performance.now() / 1000;

/** A peer's "seen N s ago", counted on from the age the daemon gave. */
export function nodeAge(node) {
  return node.age === null || node.age === undefined ? null : node.age + (now() - node.heardAt);
}

export function attachModel(conn) {
  conn.on("*", (m) => {
    if (m.nodeId !== undefined) model.selfId = m.nodeId;
    if (m.nodeName !== undefined) model.nodeName = m.nodeName;
  });
  conn.on("response_things", (m) => {
    model.things = new Map(m.things.map((t) => [t.id, t]));
    for (const t of m.things) noteUpdate(t.last_updated);
  });
  conn.on("thing_update", (m) => {
    const known = model.things.get(m.thingId) || { id: m.thingId, type: null, override: false };
    const thing = { ...known, name: m.thingName, value: m.value, valid: m.valid !== false,
                    last_updated: m.lastUpdate };
    for (const key of ["label", "unit", "kind", "origin"]) if (m[key] !== undefined) thing[key] = m[key];
    if (m.text !== undefined) thing.text = m.text;
    if (m.override !== undefined) thing.override = m.override;
    model.things.set(m.thingId, thing);
    noteUpdate(m.lastUpdate);
  });
  conn.on("response_save_thing", (m) => {
    if (m.thing) model.things.set(m.thing.id, { ...model.things.get(m.thing.id), ...m.thing });
  });
  conn.on("response_nodes", (m) => {
    model.nodes = new Map(m.nodes.map((n) => [n.id, { ...n, heardAt: now() }]));
    if (m.labels) model.labels = m.labels;
    if (m.kinds) model.kinds = m.kinds;
  });
  conn.on("response_save_label", (m) => { model.labels = m.labels; });
  conn.on("response_delete_label", (m) => { model.labels = m.labels; });
  conn.on("node_update", (m) => {
    model.nodes.set(m.node.id, { ...model.nodes.get(m.node.id), ...m.node, heardAt: now() });
  });
  conn.on("response_status", (m) => { model.status = m; });
}

function noteUpdate(seconds) {
  if (typeof seconds === "number" && seconds > 0 && !(model.lastUpdate >= seconds)) model.lastUpdate = seconds;
}

/** Things a recipe may set: switches, and none of the measured ones (2..7). */
export function settableThings() {
  return [...model.things.values()].filter((t) => t.type === 1 || t.id < 2 || t.id > 7);
}

/** A node's name for people, whether or not it has been heard. */
export function nodeLabel(id) {
  const node = model.nodes.get(id);
  if (id === model.selfId) return `${model.nodeName || "this plug"} (this plug)`;
  return node ? `${node.name} (${id})` : `node ${id}`;
}

/** "21.5 °C": a number's text with its unit, if any. */
export const withUnit = (text, unit) => (unit ? `${text} ${unit}` : text);

/** A value's name for people, from what the daemon resolved (`label`, `origin`): a person's
 * label or its plugd's name as is, the firmware's meaning marked as assumed, else unlabelled. */
export function shownName(shown) {
  if (shown.origin === "unlabelled") return `Unlabelled value (id ${shown.id})`;
  if (shown.origin === "assumed") return `${shown.label} (assumed)`;
  return shown.label || shown.name;
}

/** A thing's name for people: ours by its name for people, a peer's as the daemon resolved it. */
export function thingLabel(nodeId, thingId) {
  if (nodeId === model.selfId && model.things.has(thingId)) {
    const own = model.things.get(thingId);
    return own.label || own.name;
  }
  const heard = (model.nodes.get(nodeId)?.things || []).find((t) => t.id === thingId);
  return heard ? shownName(heard) : `Unlabelled value (id ${thingId})`;
}
