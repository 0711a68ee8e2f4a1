// The server picker: probes a server's certificate through the app's commands, asks the user to
// accept its fingerprint (trust on first use), then the app opens the server's own web UI.
const invoke = (command, args) => window.__TAURI_INTERNALS__.invoke(command, args);
const $ = (id) => document.getElementById(id);

let pending = null;

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function refreshServers() {
  const servers = await invoke("list_servers");
  const list = $("servers");
  list.replaceChildren();
  for (const server of servers) {
    const item = document.createElement("li");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link";
    open.textContent = server.url;
    open.addEventListener("click", () => connect(server.url));
    const forget = document.createElement("button");
    forget.type = "button";
    forget.className = "secondary small";
    forget.textContent = "Forget";
    forget.addEventListener("click", async () => {
      await invoke("forget_server", { origin: server.origin });
      await refreshServers();
    });
    item.append(open, forget);
    list.append(item);
  }
  $("no-servers").hidden = servers.length > 0;
}

async function connect(url) {
  $("confirm").hidden = true;
  setStatus(`Connecting to ${url}…`);
  try {
    const report = await invoke("probe_server", { url });
    if (report.trust === "known") {
      setStatus(`Opening ${report.origin}…`);
      await invoke("trust_server", { url: report.url, fingerprint: report.fingerprint, replaceChanged: false });
      return;
    }
    pending = report;
    setStatus("");
    $("confirm-origin").textContent = report.origin;
    $("fingerprint").textContent = report.fingerprint;
    $("changed-warning").hidden = report.trust !== "changed";
    $("first-use").hidden = report.trust === "changed";
    $("previous-fingerprint").textContent = report.previous_fingerprint ?? "";
    $("accept").textContent = report.trust === "changed" ? "Trust the new certificate" : "Trust and connect";
    $("confirm").hidden = false;
  } catch (error) {
    setStatus(String(error), true);
  }
}

$("connect").addEventListener("submit", (event) => {
  event.preventDefault();
  connect($("url").value);
});

$("accept").addEventListener("click", async () => {
  if (!pending) return;
  const report = pending;
  pending = null;
  $("confirm").hidden = true;
  setStatus(`Opening ${report.origin}…`);
  try {
    await invoke("trust_server", {
      url: report.url,
      fingerprint: report.fingerprint,
      replaceChanged: report.trust === "changed",
    });
  } catch (error) {
    setStatus(String(error), true);
  }
});

$("cancel").addEventListener("click", () => {
  pending = null;
  $("confirm").hidden = true;
  setStatus("");
});

refreshServers().catch((error) => setStatus(String(error), true));
