// Sessions: reading may be open, every change needs a login. A login answers with a one-time
// ticket; GET /session?ticket=... turns it into an HttpOnly cookie, and a new WebSocket then
// carries that cookie. A daemon without sessions answers request_session with response_default.
// A change refused for want of a login asks for the password in place and is then sent again,
// so the switch or save a person started completes without a second click.
import { $, trapFocus } from "./dom.js";
import { clearErrors, fieldError, formError, showApiError, whileBusy } from "./forms.js";
import { notify, reportError } from "./notify.js";

const READING_CLOSED = "This plug shows nothing until you log in.";

/** The account button and the login dialog for `conn`; changes refused for want of a login wait
 * in it (see onLoginNeeded) instead of being lost. */
export function startAuth(conn) {
  const dialog = $("#login-dialog");
  const form = $("#login-form");
  const account = $("#account");
  trapFocus(dialog);
  let session = null;  // {authenticated, readingOpen}; null: this daemon has no sessions
  const waiting = [];  // {resolve, reject} of the requests held until this login ends

  /** End the held requests: sent again after a login, refused as they were when it is given up. */
  function release(loggedIn) {
    for (const w of waiting.splice(0)) (loggedIn ? w.resolve : w.reject)();
  }

  function showAccount() {
    account.hidden = session === null;
    account.textContent = session && session.authenticated ? "Log out" : "Log in";
  }

  function openLogin(why) {
    $("#login-why").textContent = why;
    if (dialog.open) return;
    clearErrors(form);
    form.reset();
    dialog.showModal();
    $("#l-password").focus();
  }

  conn.onOpen(() => {
    conn.request({ command: "request_session" }).then((m) => {
      session = { authenticated: m.authenticated === true, readingOpen: m.readingOpen !== false };
      showAccount();
      if (!session.authenticated && !session.readingOpen) openLogin(READING_CLOSED);
      if (session.authenticated && m.initialPassword === true) $("#password-hint").hidden = false;
    }).catch((err) => {
      if (err.unsupported) { session = null; showAccount(); } else reportError(err, "Reading the session");
    });
  });

  // A change sent without a session is refused with `login: true`: it waits here for the login.
  conn.onLoginNeeded((err, message) => {
    if (session) session.authenticated = false;
    showAccount();
    const reading = session && !session.readingOpen && /^(request_|export_)/.test(message.command);
    return new Promise((resolve, reject) => {
      waiting.push({ resolve, reject });
      openLogin(reading ? READING_CLOSED : "Log in to make changes.");
    });
  });
  // Escape, "Not now" or any other close without a login gives the held requests up.
  dialog.addEventListener("close", () => release(false));

  account.addEventListener("click", () => {
    if (session && session.authenticated) logout();
    else openLogin("Changes need a password.");
  });
  $("[data-action=close]", form).addEventListener("click", () => dialog.close());

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    const password = $("#l-password").value;
    if (!password) {
      fieldError(form, "password", "Type the password.");
      return;
    }
    whileBusy(form, async () => {
      try {
        const answer = await conn.request({ command: "login", password });
        if (!answer.success) {
          fieldError(form, "password", answer.error || "The plug refused the password.");
          return;
        }
        const reply = await fetch(`/session?ticket=${encodeURIComponent(answer.ticket)}`,
                                  { credentials: "same-origin", cache: "no-store" });
        if (!reply.ok) {
          formError(form, `The plug did not open a session (HTTP ${reply.status}): try again.`);
          return;
        }
        const heldAction = waiting.length > 0;
        conn.reconnect();
        release(true);  // sent on the new socket, which carries the session
        dialog.close();
        if (answer.initialPassword === true) offerPasswordChange(!heldAction);
        else notify("Logged in.");
      } catch (err) {
        showApiError(form, err);
      }
    });
  });

  async function logout() {
    try {
      await conn.request({ command: "logout" });
    } catch (err) {
      if (!err.unsupported) reportError(err, "Logging out");
    }
    try {
      await fetch("/session?logout=1", { credentials: "same-origin", cache: "no-store" });
    } catch (err) {
      reportError(err, "Logging out");
    }
    conn.reconnect();
    notify("Logged out.");
  }

  /** After a login with the made-up first password: Settings' password form, unless the login
   * was asked for by an action, whose view stays where the person is. */
  function offerPasswordChange(go) {
    $("#password-hint").hidden = false;
    if (!go) {
      notify("Logged in. This plug still has its first password: choose your own in Settings.");
      return;
    }
    notify("Logged in.");
    location.hash = "#settings";
    $("#password-form").scrollIntoView({ block: "start" });
  }
}
