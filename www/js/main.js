// The page's entry point: one connection, the shared model, the views.
import { startAuth } from "./auth.js";
import { Connection } from "./connection.js";
import { startDashboard } from "./dashboard.js";
import { $ } from "./dom.js";
import { startEvents } from "./events.js";
import { attachModel, model } from "./model.js";
import { startNodes } from "./nodes.js";
import "./notify.js";
import { views } from "./views.js";

const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
const conn = new Connection(url);
attachModel(conn);  // first, so every view's handler sees the model already updated

startAuth(conn);  // its request_session goes out before the views' requests
startDashboard(conn, views);
startNodes(conn, views);
startEvents(conn, views);
// Views a visit to the Dashboard does not need come with their first showing: a smaller first load.
views.later("recipes", () => import("./recipes.js").then((m) => m.startRecipes(conn, views)));
views.later("schedules", () => import("./schedules.js").then((m) => m.startSchedules(conn, views)));
views.later("energy", () => import("./energy.js").then((m) => m.startEnergy(conn, views)));
views.later("settings", () => import("./settings.js").then((m) => m.startSettings(conn, views)));

conn.on("*", () => {
  if (model.nodeName && $("#node-name").textContent !== model.nodeName) {
    $("#node-name").textContent = model.nodeName;
    document.title = `${model.nodeName} · plugd`;
  }
});

// The connection's state: a dot in the header, a banner while the plug cannot be reached.
const STATE_TEXT = { connecting: "Connecting…", open: "Live", closed: "Disconnected" };
let countdown = null;
conn.onState((state) => {
  $("#conn").dataset.state = state;
  $("#conn").textContent = STATE_TEXT[state];
  const banner = $("#banner");
  clearInterval(countdown);
  if (state === "open") { banner.hidden = true; return; }
  if (state === "connecting") $("#banner-text").textContent = "Not connected to the plug. Connecting…";
  if (state === "closed") {
    const tell = () => {
      const wait = Math.max(0, Math.ceil((conn.retryAt - Date.now()) / 1000));
      $("#banner-text").textContent = `Not connected to the plug. Trying again${wait ? ` in ${wait} s` : " now"}…`;
    };
    tell();
    countdown = setInterval(tell, 500);
    banner.hidden = false;
  }
});
$("#retry").addEventListener("click", () => conn.reconnect());

conn.start();  // first: requests a view makes while the socket opens wait for it
views.start();
