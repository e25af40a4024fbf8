// Uploads the chosen files with XMLHttpRequest so the page can show progress, then reloads on success.
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const files = form.querySelector("input[type=file]").files;
    if (!files.length) { status.textContent = "Choose files first."; return; }
    const data = new FormData();
    data.append("patient", form.dataset.patient);
    for (const file of files) data.append("files", file, file.name);
    const request = new XMLHttpRequest();
    request.open("POST", form.dataset.endpoint);
    request.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    bar.style.display = "block";
    bar.value = 0;
    request.upload.onprogress = function (e) {
      if (e.lengthComputable) {
        bar.value = Math.round((100 * e.loaded) / e.total);
        status.textContent = bar.value < 100 ? "Uploading… " + bar.value + " %" : "Checking and pseudonymising…";
      }
    };
    request.onload = function () {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (e) { /* not JSON */ }
      if (request.status === 201) {
        status.textContent = "Stored " + body.length + " series.";
        window.location.reload();
      } else {
        bar.style.display = "none";
        status.textContent = "Refused: " + (body.detail || request.statusText);
      }
    };
    request.onerror = function () { status.textContent = "The upload failed (network)."; };
    request.send(data);
  });
})();
