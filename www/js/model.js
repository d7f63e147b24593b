// What the page knows of this plug and the mesh, kept current from answers and pushes.
// Views read it; only the handlers here write it (they run before the views' handlers).

export const model = {
  selfId: null,
  nodeName: "",
  things: new Map(),  // id -> {id, name, type, value, override, valid, last_updated, text?}
  nodes: new Map(),   // id -> a node as request_nodes gives it, plus `heardAt` (page clock, s)
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
  });
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

export function thingLabel(nodeId, thingId) {
  if (nodeId === model.selfId && model.things.has(thingId)) return model.things.get(thingId).name;
  return `thing ${thingId}`;
}
