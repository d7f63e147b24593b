// Sessions: reading may be open, every change needs a login. A login answers with a one-time
// ticket; GET /session?ticket=... turns it into an HttpOnly cookie, and a new WebSocket then
// carries that cookie. A daemon without sessions answers request_session with response_default.
import { $ } from "./dom.js";
import { clearErrors, fieldError, formError, showApiError, whileBusy } from "./forms.js";
import { notify, reportError } from "./notify.js";

const READING_CLOSED = "This plug shows nothing until you log in.";

export function startAuth(conn) {
  const dialog = $("#login-dialog");
  const form = $("#login-form");
  const account = $("#account");
  let session = null;  // {authenticated, readingOpen}; null: this daemon has no sessions

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

  // A change sent without a session is refused with `login: true`.
  conn.on("error", (m) => {
    if (m.login) {
      if (session) session.authenticated = false;
      showAccount();
      const reading = session && !session.readingOpen && /^(request_|export_)/.test(m.request || "");
      openLogin(reading ? READING_CLOSED : "Log in to make changes.");
    }
  });

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
        dialog.close();
        conn.reconnect();
        notify("Logged in.");
        if (answer.initialPassword === true) offerPasswordChange();
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

  function offerPasswordChange() {
    $("#password-hint").hidden = false;
    location.hash = "#settings";
    $("#password-form").scrollIntoView({ block: "start" });
  }
}
