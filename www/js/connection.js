// The one WebSocket to the daemon: reconnects with backoff, pairs answers with requests.
// The daemon answers a connection's requests in order, and pushes (thing_update,
// node_update, event) may come in between, so answers are matched first-in first-out.

const MIN_DELAY = 250;   // ms before the first retry
const MAX_DELAY = 4000;  // the backoff stops growing here: a plug back from a reboot is seen quickly
const ANSWER_TIMEOUT = 10000;

/** An error answer; `field` is what it names ("recipe.relation"), `login` asks for a session. */
export class ApiError extends Error {
  constructor(message, { field = "", problem = message, login = false, unsupported = false } = {}) {
    super(message);
    Object.assign(this, { field, problem, login, unsupported });
  }

  static from(answer) {
    const text = String(answer.error || "the daemon refused the request");
    const named = /^([A-Za-z_][\w.[\]]*): (.+)$/s.exec(text);
    return new ApiError(text, { field: named ? named[1] : "", problem: named ? named[2] : text,
                                login: answer.login === true });
  }
}

export class Connection {
  constructor(url) {
    this.url = url;
    this.ws = null;
    this.state = "connecting";
    this.delay = MIN_DELAY;
    this.retryAt = 0;
    this.pending = [];
    this.waiting = [];  // requests made while a socket was opening: sent once it is open
    this.handlers = new Map();
    this.stateHandlers = [];
    this.openHandlers = [];
    this.loginHandler = null;
  }

  /** Call `fn(message)` for every message whose command is `command` ("*": all). */
  on(command, fn) {
    if (!this.handlers.has(command)) this.handlers.set(command, []);
    this.handlers.get(command).push(fn);
  }

  /** `fn(state)` on "connecting", "open" and "closed". */
  onState(fn) { this.stateHandlers.push(fn); }

  /** `fn()` each time a socket opens: the place to (re)load what the page shows. */
  onOpen(fn) { this.openHandlers.push(fn); }

  /** `fn(err, message)` is asked when a request is refused for want of a login; it returns a promise that
   * resolves once a session is open (the request is then sent again, so the action a person
   * started completes) or rejects when they give up (the request fails with the refusal). */
  onLoginNeeded(fn) { this.loginHandler = fn; }

  start() { this.open(); }

  open() {
    clearTimeout(this.timer);
    this.setState("connecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.delay = MIN_DELAY;
      this.setState("open");
      for (const fn of this.openHandlers) safely(fn);
      for (const w of this.waiting.splice(0)) this.send(w.message).then(w.resolve, w.reject);
    };
    ws.onmessage = (frame) => this.receive(frame.data);
    ws.onclose = () => {
      if (this.ws !== ws) return;  // a socket we replaced on purpose
      this.dropPending("the connection to the plug was lost");
      for (const w of this.waiting.splice(0)) w.reject(new ApiError("not connected to the plug"));
      this.retryAt = Date.now() + this.delay;
      this.timer = setTimeout(() => this.open(), this.delay);
      this.delay = Math.min(this.delay * 2, MAX_DELAY);
      this.setState("closed");
    };
  }

  /** A fresh socket now: after a login or logout, so the new session cookie is sent. */
  reconnect() {
    const old = this.ws;
    this.ws = null;
    if (old) old.close();
    this.dropPending("the connection was renewed");
    this.delay = MIN_DELAY;
    this.open();
  }

  setState(state) {
    this.state = state;
    for (const fn of this.stateHandlers) safely(() => fn(state));
  }

  /** Send a request; resolves with its answer, rejects with an ApiError. One refused for want
   * of a login waits for the login handler and is sent once more after it. */
  request(message) {
    return this.send(message).catch((err) => {
      if (!err.login || !this.loginHandler) throw err;
      return this.loginHandler(err, message).then(() => this.send(message), () => { throw err; });
    });
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.CONNECTING) {
      return new Promise((resolve, reject) => this.waiting.push({ message, resolve, reject }));
    }
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ApiError("not connected to the plug: wait for the connection"));
    }
    return new Promise((resolve, reject) => {
      const entry = { command: message.command, resolve, reject, done: false };
      // A late answer still comes in its turn: the entry stays queued to take it, unanswered.
      entry.timer = setTimeout(() => this.settle(entry, new ApiError(
        `the plug did not answer ${message.command} in time`)), ANSWER_TIMEOUT);
      this.pending.push(entry);
      this.ws.send(JSON.stringify(message));
    });
  }

  settle(entry, error, answer) {
    clearTimeout(entry.timer);
    if (entry.done) return;
    entry.done = true;
    if (error) entry.reject(error); else entry.resolve(answer);
  }

  dropPending(reason) {
    for (const entry of this.pending.splice(0)) this.settle(entry, new ApiError(reason));
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      console.warn("plugd: a frame that is not JSON", text);
      return;
    }
    const command = message.command;
    const isAnswer = command === "error" || (typeof command === "string" && command.startsWith("response_"));
    // Handlers first, so the shared model is current when a request's promise resolves.
    for (const fn of [...(this.handlers.get(command) || []), ...(this.handlers.get("*") || [])]) {
      safely(() => fn(message));
    }
    if (isAnswer && this.pending.length) {
      const entry = this.pending.shift();
      if (command === "error") this.settle(entry, ApiError.from(message));
      else if (command === "response_default") {
        // An older daemon that does not know the command yet.
        this.settle(entry, new ApiError(`this plug does not support ${entry.command} yet`,
                                        { unsupported: true }));
      } else this.settle(entry, null, message);
    }
  }
}

function safely(fn) {
  try {
    fn();
  } catch (err) {
    console.error(err);
    window.dispatchEvent(new CustomEvent("plugd-error", { detail: err }));
  }
}
