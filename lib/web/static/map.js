// The map page: one plotly trace per genre from /api/map; a click opens the movie.
"use strict";
// Plotly reads a few HTML tags in hover text: titles from the data are shown as written.
const plain = text => String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
// 20 distinguishable colours (d3's category20): MovieLens has 18-20 genres.
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
  "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"];
(async () => {
  const node = document.getElementById("map");
  const response = await fetch("/api/map");
  const data = await response.json();
  if (!response.ok) { node.textContent = data.error; return; }
  // SVG points up to 20,000 movies (they draw without a GPU); WebGL above, for speed.
  const gl = data.movie_id.length > 20000;
  const byGenre = new Map();
  data.movie_id.forEach((id, i) => {
    const g = data.genre[i];
    if (!byGenre.has(g)) byGenre.set(g, {x: [], y: [], text: [], customdata: []});
    const t = byGenre.get(g);
    t.x.push(data.x[i]); t.y.push(data.y[i]); t.text.push(plain(data.title[i])); t.customdata.push(id);
  });
  const traces = [...byGenre.entries()].sort((a, b) => b[1].x.length - a[1].x.length).map(
    ([genre, t]) => ({...t, name: plain(genre), type: gl ? "scattergl" : "scatter", mode: "markers",
                      marker: {size: 5, opacity: 0.75}, hovertemplate: "%{text}<extra>%{fullData.name}</extra>"}));
  await Plotly.newPlot(node, traces, {
    margin: {l: 10, r: 10, t: 30, b: 10}, xaxis: {visible: false}, yaxis: {visible: false},
    colorway: PALETTE,
    legend: {itemsizing: "constant"}, hovermode: "closest"}, {responsive: true, displaylogo: false});
  node.on("plotly_click", event => {
    const id = event.points[0].customdata;
    window.location.href = "/movies/" + encodeURIComponent(id);
  });
})();
