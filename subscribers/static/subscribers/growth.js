// The growth page's chart: subscribers joined and left per week, from the page's JSON.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("growth-data").textContent);
  var canvas = document.getElementById("growth-chart");
  new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: data.weeks,
      datasets: [
        { label: "Joined", data: data.joined, backgroundColor: "#417690" },
        { label: "Left", data: data.left.map(function (n) { return -n; }), backgroundColor: "#ba2121" }
      ]
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: { x: { stacked: true }, y: { stacked: true, ticks: { precision: 0 } } }
    }
  });
  canvas.dataset.ready = "true";
})();
