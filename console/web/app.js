// Tether's stand-in web console: first-run setup, login, password change, and a live list of
// device groups and devices over the /control WebSocket. Plain ES module, no build step; every
// piece of server data reaches the page through textContent, never as HTML.

const $ = (id) => document.getElementById(id);
const views = ["loading", "setup", "login", "register", "console"];

function show(view) {
  for (const id of views) $(id).hidden = id !== view;
  const first = $(view).querySelector("input");
  if (first) first.focus();
}

async function api(path, body) {
  const options = body === undefined
    ? { method: "GET" }
    : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  let response;
  try {
    response = await fetch(path, { ...options, credentials: "same-origin" });
  } catch {
    return { status: 0, data: { message: "The server cannot be reached." } };
  }
  const data = await response.json().catch(() => ({}));
  return { status: response.status, data };
}

// Runs `submit` for a form with its fields as an object, showing errors in the form's alert line
// and keeping the button disabled meanwhile.
function handleForm(form, submit) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = form.querySelector(".error");
    const button = form.querySelector("button[type=submit]");
    error.textContent = "";
    const fields = Object.fromEntries(new FormData(form));
    if ("confirm" in fields && fields.confirm !== (fields.password ?? fields.new_password)) {
      error.textContent = "The two passwords differ.";
      return;
    }
    button.disabled = true;
    try {
      const message = await submit(fields);
      if (message) error.textContent = message;
      else form.reset();
    } finally {
      button.disabled = false;
    }
  });
}

function errorText({ status, data }) {
  if (status === 401 && data.error === "bad_credentials") return "Wrong user name or password.";
  return data.message || `The request failed (HTTP ${status}).`;
}

async function start() {
  const result = await api("/api/status");
  if (result.status !== 200) {
    $("loading").textContent = errorText(result);
    return;
  }
  const status = result.data;
  $("register-offer").hidden = !status.new_accounts;
  if (status.user) enterConsole(status.user);
  else if (status.setup_required) show("setup");
  else show("login");
}

function accountForm(path) {
  return async ({ name, email, password }) => {
    const result = await api(path, { name, email: email || null, password });
    if (result.status !== 201) return errorText(result);
    enterConsole(result.data.user);
  };
}

handleForm($("setup-form"), accountForm("/api/setup"));
handleForm($("register-form"), accountForm("/api/register"));

handleForm($("login-form"), async ({ user, password }) => {
  const result = await api("/api/login", { user, password });
  if (result.status !== 200) return errorText(result);
  enterConsole(result.data.user);
});

handleForm($("password-form"), async ({ old_password, new_password }) => {
  const notice = $("password-form").querySelector(".notice");
  notice.textContent = "";
  const result = await api("/api/password", { old_password, new_password });
  if (result.status !== 200) return errorText(result);
  notice.textContent = "Password changed. Your other sessions have been logged out.";
});

$("show-register").addEventListener("click", () => show("register"));
$("show-login").addEventListener("click", () => show("login"));

$("logout").addEventListener("click", async () => {
  await api("/api/logout", {});
  leaveConsole();
  show("login");
});

// ---- The logged-in view ----

const control = { socket: null, nextId: 1, pending: new Map(), retryMs: 1000, timer: null, active: false };
const groups = new Map();
const devices = new Map();

function enterConsole(user) {
  $("user-name").textContent = user.name;
  $("password-user").defaultValue = user.name;
  $("user-role").textContent = user.site_admin ? " (administrator)" : "";
  $("session").hidden = false;
  show("console");
  control.active = true;
  connect();
}

function leaveConsole() {
  control.active = false;
  clearTimeout(control.timer);
  if (control.socket) control.socket.close();
  control.socket = null;
  groups.clear();
  devices.clear();
  $("session").hidden = true;
  render();
}

function setConnection(text) {
  $("connection").textContent = text;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}/control`);
  control.socket = socket;
  setConnection("Connecting…");
  socket.addEventListener("open", async () => {
    control.retryMs = 1000;
    setConnection("Live");
    const [groupList, deviceList] = await Promise.all([request("listGroups"), request("listDevices")]);
    groups.clear();
    devices.clear();
    for (const group of groupList ?? []) groups.set(group.id, group);
    for (const device of deviceList ?? []) devices.set(device.id, device);
    render();
  });
  socket.addEventListener("message", (event) => receive(event.data));
  socket.addEventListener("close", () => onClosed(socket));
}

async function onClosed(socket) {
  if (control.socket !== socket) return;
  for (const { resolve } of control.pending.values()) resolve(null);
  control.pending.clear();
  control.socket = null;
  if (!control.active) return;
  // A closed channel may mean the session ended (logout elsewhere, password change).
  const status = await api("/api/status");
  if (status.status === 200 && !status.data.user) {
    leaveConsole();
    show("login");
    return;
  }
  setConnection(`Disconnected; retrying in ${Math.round(control.retryMs / 1000)} s…`);
  control.timer = setTimeout(connect, control.retryMs);
  control.retryMs = Math.min(control.retryMs * 2, 30000);
}

function request(action, args = {}) {
  const id = control.nextId++;
  return new Promise((resolve) => {
    control.pending.set(id, { resolve });
    control.socket.send(JSON.stringify({ action, id, ...args }));
  });
}

function receive(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    return;
  }
  if (frame.action === "event" && frame.event) {
    applyEvent(frame.event);
    return;
  }
  const waiting = control.pending.get(frame.id);
  if (!waiting) return;
  control.pending.delete(frame.id);
  if (!frame.ok) setConnection(`Error: ${frame.error?.message ?? "request failed"}`);
  waiting.resolve(frame.ok ? frame.result : null);
}

function applyEvent(event) {
  switch (event.type) {
    case "groupCreated":
    case "groupChanged":
      groups.set(event.group.id, event.group);
      break;
    case "groupDeleted":
      groups.delete(event.group);
      for (const [id, device] of devices) if (device.group === event.group) devices.delete(id);
      break;
    case "deviceAdded":
    case "deviceChanged":
      devices.set(event.device.id, event.device);
      break;
    case "deviceRemoved":
      devices.delete(event.device);
      break;
    case "deviceOnline":
    case "deviceOffline": {
      const device = devices.get(event.device);
      if (device) device.online = event.type === "deviceOnline";
      if (device && device.online) device.lastseen = Math.floor(Date.now() / 1000);
      break;
    }
    default:
      return;
  }
  render();
}

// ---- Rendering ----

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function lastSeen(device) {
  if (device.online) return "online";
  if (!device.lastseen) return "never connected";
  return `last seen ${new Date(device.lastseen * 1000).toLocaleString()}`;
}

function deviceRow(device) {
  const row = element("li", "device");
  const badge = element("span", device.online ? "badge online" : "badge offline", device.online ? "Online" : "Offline");
  row.append(badge, element("span", "device-name", device.name));
  const details = [device.os, device.hostname !== device.name ? device.hostname : "", lastSeen(device)];
  row.append(element("span", "muted", details.filter(Boolean).join(" · ")));
  return row;
}

function render() {
  const container = $("groups");
  const byName = (a, b) => a.name.localeCompare(b.name);
  const sections = [...groups.values()].sort(byName).map((group) => {
    const section = element("section", "card group");
    section.append(element("h2", null, group.name));
    if (group.description) section.append(element("p", "muted", group.description));
    const members = [...devices.values()].filter((d) => d.group === group.id).sort(byName);
    if (members.length === 0) {
      section.append(element("p", "muted", "No devices yet."));
    } else {
      const list = element("ul", "devices");
      list.append(...members.map(deviceRow));
      section.append(list);
    }
    return section;
  });
  container.replaceChildren(...sections);
  $("no-groups").hidden = groups.size > 0 || !control.active;
}

start();
