// The analytics page's chart: opens and clicks per hour after sending, from the page's JSON.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("hours-data").textContent);
  var series = [
    ["opens_human", "Opens by people", "#417690"],
    ["clicks_human", "Clicks by people", "#e0883e"],
    ["opens_proxy", "Opens (proxy)", "#8aa5b3"],
    ["machine", "Machine hits", "#b0b0b0"]
  ];
  new window.Chart(document.getElementById("hours-chart"), {
    type: "line",
    data: {
      labels: data.hours.map(function (hour) { return hour + " h"; }),
      datasets: series.map(function (item) {
        return { label: item[1], data: data[item[0]], borderColor: item[2], backgroundColor: item[2], tension: 0.2, pointRadius: 0 };
      })
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } }
    }
  });
  document.getElementById("hours-chart").dataset.ready = "true";
})();
