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
  const nameCell = document.createElement("td");
  const link = document.createElement("a");
  link.className = "name";
  link.textContent = thing.name;
  link.addEventListener("click", () => showDetail(thing.name));
  nameCell.append(link);
  row.replaceChildren(
    nameCell,
    cell(thing.online ? "online" : "offline", thing.online ? "online" : "offline"),
    relay,
    action,
    cell(thing.fw_version ?? "—", "firmware"),
    cell(thing.ota_status ?? "—", "ota"),
    cell(since(thing.last_seen), "seen"),
  );
  things.set(thing.name, thing);
  updateSummary();
  addTarget(thing.name);
  if (detailFor === thing.name) showDetail(thing.name);
  if (devicesByThing.has(thing.name)) loadDevices();
}

const things = new Map();

let summaryQueued = false;

function updateSummary() {
  // Once a frame however many rows changed: a thousand rows render without a thousand sums.
  if (summaryQueued) return;
  summaryQueued = true;
  requestAnimationFrame(() => {
    summaryQueued = false;
    writeSummary();
  });
}

function writeSummary() {
  const all = [...things.values()];
  const online = all.filter((t) => t.online).length;
  const versions = new Map();
  for (const t of all) versions.set(t.fw_version ?? "?", (versions.get(t.fw_version ?? "?") ?? 0) + 1);
  const versionText = [...versions].map(([v, n]) => `${v} ×${n}`).join(", ");
  const errors = all.filter((t) => /^failed|rolled back/.test(t.ota_status ?? ""));
  const errorText = errors.length ? ` · errors: ${errors.map((t) => `${t.name}: ${t.ota_status}`).join("; ")}` : "";
  summary.textContent = `${online} of ${all.length} online · firmware ${versionText || "—"}${errorText}`;
}

// -- one thing: its shadow, jobs and certificates ---------------------------------------
let detailFor = null;

async function showDetail(name) {
  detailFor = name;
  const response = await fetch(`/api/things/${encodeURIComponent(name)}`);
  if (!response.ok) return showError(`${name}: ${response.status}`);
  const detail = await response.json();
  document.querySelector("#detail").hidden = false;
  document.querySelector("#detail-title").textContent = name;
  document.querySelector("#detail-shadow").textContent = JSON.stringify(detail.shadow, null, 2);
  const jobs = document.querySelector("#detail-jobs");
  jobs.replaceChildren(...detail.jobs.map((j) => {
    const li = document.createElement("li");
    li.textContent = `${j.jobId}: ${j.jobExecutionSummary?.status ?? j.status ?? "?"}`;
    return li;
  }));
  const certs = document.querySelector("#detail-certificates");
  certs.replaceChildren(...detail.certificates.map((c) => {
    const li = document.createElement("li");
    li.textContent = `${c.id.slice(0, 16)}… ${c.status} `;
    if (c.status === "ACTIVE") {
      const revoke = document.createElement("button");
      revoke.textContent = "Revoke";
      revoke.className = "revoke";
      revoke.addEventListener("click", () => post(`/api/certificates/${c.id}/revoke`, {}).then(() => showDetail(name)));
      li.append(revoke);
    }
    return li;
  }));
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) showError(answer.message ?? response.statusText);
  return answer;
}

// -- firmware update: upload, then a job for one thing or all ---------------------------
const target = document.querySelector("#ota-target");
const targets = new Set();

function addTarget(name) {
  if (targets.has(name)) return;
  targets.add(name);
  const option = document.createElement("option");
  option.value = name;
  option.textContent = name;
  target.append(option);
}

document.querySelector("#ota-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = document.querySelector("#ota-file").files[0];
  const result = document.querySelector("#ota-result");
  if (!file) return (result.textContent = "choose an image first");
  const uploaded = await fetch("/api/firmware", {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream", "X-Jumpstart-Dashboard": "1" },
    body: file,
  });
  const image = await uploaded.json().catch(() => ({}));
  if (!uploaded.ok) return (result.textContent = `refused: ${image.message ?? uploaded.status}`);
  const job = await post("/api/ota", { firmware: image.name, thing: target.value || null });
  result.textContent = job.jobId
    ? `${image.project} ${image.version}: job ${job.jobId} started`
    : `refused: ${job.message ?? "?"}`;
});

// -- devices on this machine: a front panel each ----------------------------------------
const devicesByThing = new Map();

async function loadDevices() {
  const response = await fetch("/api/devices");
  if (!response.ok) return;
  const { devices } = await response.json();
  const panels = document.querySelector("#panels");
  devicesByThing.clear();
  panels.replaceChildren(...devices.map((device) => {
    if (device.thing) devicesByThing.set(device.thing, device.name);
    const panel = document.createElement("div");
    panel.className = "panel";
    panel.dataset.device = device.name;
    const on = Object.values(device.outputs).some((level) => level === 1);
    const lamp = document.createElement("span");
    lamp.className = on ? "lamp on" : "lamp";
    const title = document.createElement("strong");
    title.textContent = ` ${device.name} (${device.chip}) ${device.running ? "" : "— not running"}`;
    panel.append(lamp, title, document.createElement("br"));
    if (device.running) {
      for (const [label, hold] of [["Tap", 0.1], ["Hold 3 s (reset)", 3.2]]) {
        const button = document.createElement("button");
        button.textContent = label;
        button.className = hold > 1 ? "hold" : "tap";
        button.addEventListener("click", async () => {
          button.disabled = true;
          await post(`/api/devices/${encodeURIComponent(device.name)}/press`, { hold });
          button.disabled = false;
          loadDevices();
        });
        panel.append(button);
      }
    }
    const tail = document.createElement("div");
    tail.className = "console";
    tail.textContent = device.console.join("\n") || "(console not captured: run it with 'jumpstart device run')";
    panel.append(tail);
    return panel;
  }));
}

async function start() {
  // The stream first, then the list: a change in between arrives on the stream, or is in
  // the list already (the server sends changes only, never the whole fleet again).
  const events = new EventSource("/api/events");
  events.addEventListener("thing", (event) => render(JSON.parse(event.data)));
  events.addEventListener("error", () => showError("lost the cloud's event stream; retrying…"));
  events.addEventListener("open", () => showError(""));
  const response = await fetch("/api/things");
  if (!response.ok) {
    showError(`the cloud answered ${response.status}: open the URL 'jumpstart cloud serve' printed`);
    return;
  }
  for (const thing of (await response.json()).things) render(thing);
}

start();
loadDevices();
