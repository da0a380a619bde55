// The outlets table: filled from /api/things, kept current by the server's event stream
// (no polling), with a toggle per thing that writes desired.output through the cloud's API.

const rows = new Map();
const tbody = document.querySelector("#things tbody");
const summary = document.querySelector("#summary");
const errorLine = document.querySelector("#error");

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function since(seconds) {
  if (!seconds) return "—";
  return new Date(seconds * 1000).toLocaleTimeString();
}

async function toggle(thing) {
  const current = thing.output ?? thing.desired_output ?? false;
  const response = await fetch(`/api/things/${encodeURIComponent(thing.name)}/output`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ output: !current }),
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    showError(`${thing.name}: ${body.message ?? response.statusText}`);
  }
}

function showError(text) {
  errorLine.textContent = text;
  errorLine.hidden = !text;
}

function render(thing) {
  let row = rows.get(thing.name);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.thing = thing.name;
    rows.set(thing.name, row);
    tbody.append(row);
  }
  const lamp = document.createElement("span");
  lamp.className = thing.output ? "lamp on" : "lamp";
  lamp.title = thing.output ? "relay on" : "relay off";
  const relay = document.createElement("td");
  relay.className = "relay";
  relay.dataset.output = String(Boolean(thing.output));
  relay.append(lamp);
  const button = document.createElement("button");
  button.textContent = thing.output ? "Turn off" : "Turn on";
  button.className = "toggle";
  button.addEventListener("click", () => toggle(thing));
  const action = document.createElement("td");
  action.append(button);
  row.replaceChildren(
    cell(thing.name, "name"),
    cell(thing.online ? "online" : "offline", thing.online ? "online" : "offline"),
    relay,
    action,
    cell(thing.fw_version ?? "—", "firmware"),
    cell(thing.ota_status ?? "—", "ota"),
    cell(since(thing.last_seen), "seen"),
  );
  updateSummary();
}

function updateSummary() {
  const cells = [...tbody.querySelectorAll("td.online, td.offline")];
  const online = cells.filter((td) => td.classList.contains("online")).length;
  summary.textContent = `${online} of ${cells.length} online`;
}

async function start() {
  const response = await fetch("/api/things");
  if (!response.ok) {
    showError(`the cloud answered ${response.status}: open the URL 'jumpstart cloud serve' printed`);
    return;
  }
  for (const thing of (await response.json()).things) render(thing);
  const events = new EventSource("/api/events");
  events.addEventListener("thing", (event) => render(JSON.parse(event.data)));
  events.addEventListener("error", () => showError("lost the cloud's event stream; retrying…"));
  events.addEventListener("open", () => showError(""));
}

start();
