/* The dispatch progress box refreshes itself while sending (no page reload): every 2 s it reads
   the dispatch's progress JSON (an admin view with the page's permissions), updates the counts,
   the bar, the rate over the last interval and the time left, and stops once all is settled. */
(function () {
  "use strict";
  var box = document.getElementById("dispatch-progress");
  if (!box || !box.dataset.progressUrl) {
    return;
  }
  var url = box.dataset.progressUrl;
  var INTERVAL = 2000;
  var last = null; // the previous sample: {t: seconds, settled: count}

  function setText(id, value) {
    var element = document.getElementById(id);
    if (element) {
      element.textContent = value;
    }
  }

  function cell(tag, value, className) {
    var element = document.createElement(tag);
    element.textContent = String(value);
    if (className) {
      element.className = className;
    }
    return element;
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) {
      return seconds + " s";
    }
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) {
      return minutes + " min " + (seconds % 60) + " s";
    }
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function capitalize(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function renderRows(data) {
    var body = document.getElementById("progress-rows");
    if (body) {
      var rows = [];
      data.channels.forEach(function (channel) {
        var row = document.createElement("tr");
        row.appendChild(cell("td", channel.name));
        data.statuses.forEach(function (status) {
          row.appendChild(cell("td", channel.counts[status] || 0, "num"));
        });
        row.appendChild(cell("td", channel.total, "num"));
        rows.push(row);
      });
      if (rows.length === 0) {
        var empty = document.createElement("tr");
        var note = cell("td", "No deliveries yet.");
        note.colSpan = data.statuses.length + 2;
        empty.appendChild(note);
        rows.push(empty);
      }
      body.replaceChildren.apply(body, rows);
    }
    var totals = document.getElementById("progress-totals");
    if (totals) {
      var cells = [cell("th", "All channels")];
      data.totals.forEach(function (count) {
        cells.push(cell("th", count, "num"));
      });
      cells.push(cell("th", data.total, "num"));
      totals.replaceChildren.apply(totals, cells);
    }
  }

  function renderRate(data) {
    var now = Date.now() / 1000;
    if (data.done) {
      setText("progress-rate", "Finished.");
      setText("progress-eta", "");
      return;
    }
    if (last !== null && now > last.t) {
      var rate = (data.settled - last.settled) / (now - last.t);
      setText("progress-rate", "Rate: " + rate.toFixed(1) + " messages/s");
      var left = data.total - data.settled;
      setText("progress-eta", rate > 0 ? "Time left: about " + duration(left / rate) : "Time left: waiting for the next messages");
    }
    last = {t: now, settled: data.settled};
  }

  function render(data) {
    setText("progress-percent", data.percent.toFixed(1) + "%");
    setText("progress-counts", data.settled + " of " + data.total + " deliveries" + (data.done ? " (all settled)" : ""));
    setText("progress-status", capitalize(data.dispatch_status));
    var fill = document.getElementById("progress-bar-fill");
    if (fill) {
      fill.style.width = data.percent + "%";
      fill.parentNode.setAttribute("aria-valuenow", String(data.percent));
    }
    renderRows(data);
    renderRate(data);
    Object.keys(data.fields || {}).forEach(function (name) {
      // The dispatch page's own read-only fields (status, planned at, finished at).
      var field = document.querySelector(".field-" + name + " .readonly");
      if (field) {
        field.textContent = data.fields[name];
      }
    });
    setText("progress-updated", data.done ? "" : "Updated " + new Date().toLocaleTimeString() + ".");
  }

  function poll() {
    fetch(url, {credentials: "same-origin", cache: "no-store", headers: {Accept: "application/json"}})
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        render(data);
        if (!data.done) {
          window.setTimeout(poll, INTERVAL);
        }
      })
      .catch(function () {
        setText("progress-updated", "Could not refresh; trying again.");
        window.setTimeout(poll, INTERVAL * 2);
      });
  }

  if (box.dataset.done !== "1") {
    window.setTimeout(poll, INTERVAL);
  }
})();
