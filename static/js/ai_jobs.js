// Refresh the AI proposal jobs' stage and percent while one is queued or running; reload when it ends.
(function () {
  const table = document.getElementById("ai-jobs");
  if (!table || table.dataset.open !== "1") return;
  async function poll() {
    const response = await fetch(`/api/v1/inference/jobs/?patient=${table.dataset.patient}`, { credentials: "same-origin" });
    if (!response.ok) return;
    const body = await response.json();
    const jobs = body.results || body;
    let open = false;
    for (const job of jobs) {
      const row = table.querySelector(`tr[data-job="${job.id}"]`);
      if (!row) { window.location.reload(); return; }
      row.querySelector(".status").textContent = job.status;
      row.querySelector(".failure").textContent = job.failure_reason;
      const cell = row.querySelector(".progress");
      if (job.status === "queued" || job.status === "running") {
        open = true;
        cell.innerHTML = "";
        const bar = document.createElement("progress");
        bar.max = 100; bar.value = job.percent;
        const text = document.createElement("span");
        text.textContent = ` ${job.stage} ${job.percent}%`;
        cell.append(bar, text);
      } else {
        cell.textContent = "";
      }
    }
    if (open) setTimeout(poll, 2000); else window.location.reload();
  }
  setTimeout(poll, 2000);
})();
