// Short messages at the bottom of the screen: what worked, and what went wrong and why.
import { $, el } from "./dom.js";

const SHOWN_FOR = { info: 3000, error: 7000 };

/** Tell the person `text` for a few seconds; an error stays longer and is announced at once. */
export function notify(text, kind = "info") {
  if (kind === "error") console.error(`plugd: ${text}`);  // kept in the console after the toast goes
  const box = $("#toasts");
  const toast = el("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  box.append(toast);
  setTimeout(() => toast.remove(), SHOWN_FOR[kind] || 4000);
  while (box.children.length > 3) box.firstElementChild.remove();
}

/** Show a failed action: the daemon's own words when it gave some. */
export function reportError(err, doing = "") {
  if (err && err.login) return;  // the login form opens instead; see auth.js
  const text = err && err.message ? err.message : String(err);
  notify(doing ? `${doing}: ${text}` : text, "error");
}

// A bug in the page must still say something rather than fail silently.
window.addEventListener("plugd-error", (e) => reportError(e.detail, "Page error"));
window.addEventListener("unhandledrejection", (e) => reportError(e.reason));
window.addEventListener("error", (e) => reportError(e.error || e.message, "Page error"));
