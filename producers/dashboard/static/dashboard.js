// callq dashboard: confirmation of destructive forms and the live outcomes table (server-sent events).
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  row.appendChild(td);
  return td;
}

document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("outcomes");
  if (!table) return;
  const body = table.querySelector("tbody");
  const live = document.getElementById("live");
  const source = new EventSource(table.dataset.stream);
  source.addEventListener("open", () => { live.textContent = "live"; live.className = "badge ok"; });
  source.addEventListener("error", () => { live.textContent = "reconnecting…"; live.className = "badge warn"; });
  function addRow(o) {
    const row = document.createElement("tr");
    row.dataset.job = o.job_id;
    row.dataset.status = o.status;
    cell(row, o.finished_at);
    const link = document.createElement("a");
    link.href = table.dataset.jobs + encodeURIComponent(o.job_id);
    link.textContent = o.job_id;
    cell(row, "").appendChild(link);
    cell(row, o.portal);
    cell(row, o.from_line);
    cell(row, o.status).className = "state-" + o.status;
    cell(row, o.error ? o.error.code + ": " + o.error.description : "");
    cell(row, "").className = "call";
    body.insertBefore(row, body.firstChild);
    while (body.rows.length > 200) body.deleteRow(body.rows.length - 1);
    return row;
  }
  source.addEventListener("outcome", (event) => { addRow(JSON.parse(event.data)); });
  // a followed call's final result: an update of its job's row (one row per job), added if the
  // job's outcome is older than the page
  source.addEventListener("call_result", (event) => {
    const o = JSON.parse(event.data);
    const rows = Array.from(body.rows).filter((r) => r.dataset.job === o.job_id);
    const row = rows.length ? rows[0] : addRow(o);
    const call = o.call || {};
    row.dataset.call = call.result || "";
    row.querySelector("td.call").textContent = call.result ? call.result + " (" + call.ended_by + ")" : "";
  });
});
