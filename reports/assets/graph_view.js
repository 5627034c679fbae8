/* Lineage graph view.
 *
 * Reads the graph from <script type="application/json" id="lineage-data">, draws it with
 * vis-network at positions computed in Python (physics off, so big graphs draw at once),
 * and wires the view toggle, the search box and the side panel. Every name reaches the
 * page through textContent or the canvas, never as HTML.
 *
 * window.lineageGraph is a small read-only hook for tests and benchmarks.
 */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("lineage-data").textContent);
  var root = document.getElementById("lineage-graph");
  var canvas = root.querySelector(".lg-canvas");
  var panel = root.querySelector(".lg-panel");
  var searchBox = root.querySelector(".lg-search input");
  var results = root.querySelector(".lg-results");
  var countLabel = root.querySelector(".lg-count");
  var toggles = root.querySelectorAll(".lg-toggle button");
  var indirectBox = root.querySelector(".lg-show-indirect");
  var MAX_RESULTS = 50;
  var COLORS = {
    dataset: { background: "#dbeafe", border: "#2563eb" },
    job: { background: "#fef3c7", border: "#d97706" },
    column: { background: "#f1f5f9", border: "#64748b" }
  };

  // ------------------------------------------------------------------ index

  var byId = new Map();
  data.datasets.forEach(function (d) { d.kind = "dataset"; byId.set(d.id, d); });
  data.jobs.forEach(function (j) { j.kind = "job"; byId.set(j.id, j); });
  data.columns.forEach(function (c) { c.kind = "column"; byId.set(c.id, c); });
  var colUp = new Map();
  var colDown = new Map();
  data.columnEdges.forEach(function (e) {
    push(colUp, e[1], { id: e[0], how: e[2] });
    push(colDown, e[0], { id: e[1], how: e[2] });
  });

  function push(map, key, value) {
    var list = map.get(key);
    if (!list) { list = []; map.set(key, list); }
    list.push(value);
  }

  function fullName(item) {
    if (item.kind === "column") { return byId.get(item.ds).name + "." + item.name; }
    return item.name;
  }

  function shortLabel(text, max) {
    return text.length > max ? text.slice(0, max - 1) + "\u2026" : text;
  }

  // ------------------------------------------------------------------ views

  var big = data.datasets.length + data.jobs.length + data.columns.length > 1500;
  var edgeStyle = big ? false : { type: "cubicBezier", forceDirection: "horizontal", roundness: 0.4 };

  function jobTitle(j) {
    return "job " + j.ns + "\n" + j.name + (j.group ? "\npart of pipeline " + j.group : "") + (j.state ? "\n" + j.state : "");
  }

  // A wide, shallow graph fitted to the canvas fills its width and a thin band of its
  // height: spread the rows (up to 2.5x) so the first view uses the canvas it has.
  function rowStretch(items) {
    if (items.length < 2 || !canvas.clientWidth || !canvas.clientHeight) { return 1; }
    var xs = items.map(function (n) { return n.x; });
    var ys = items.map(function (n) { return n.y; });
    var w = Math.max.apply(null, xs) - Math.min.apply(null, xs) + 240;
    var h = Math.max.apply(null, ys) - Math.min.apply(null, ys) + 90;
    var wanted = 0.8 * (canvas.clientHeight / canvas.clientWidth) * w / h;
    return Math.max(1, Math.min(2.5, wanted));
  }

  function tableView() {
    var stretch = rowStretch(data.datasets.concat(data.jobs));
    var nodes = data.datasets.map(function (d) {
      return { id: d.id, label: d.label, title: d.ns + "\n" + d.name, x: d.x, y: d.y * stretch,
        shape: "box", color: COLORS.dataset, margin: 10, font: { size: 15 } };
    });
    data.jobs.forEach(function (j) {
      nodes.push({ id: j.id, label: j.label, title: jobTitle(j),
        x: j.x, y: j.y * stretch, shape: "box", shapeProperties: { borderRadius: 14 }, margin: 8,
        color: COLORS.job, font: { size: 14 } });
    });
    var edges = [];
    data.jobs.forEach(function (j) {
      j.ins.forEach(function (d) { edges.push({ from: d, to: j.id }); });
      j.outs.forEach(function (d) { edges.push({ from: j.id, to: d }); });
    });
    return { nodes: nodes, edges: edges };
  }

  function columnView() {
    var nodes = data.datasets.map(function (d) {
      return { id: d.id, label: d.label.replace(/\n/g, ""), title: d.ns + "\n" + d.name, x: d.cx, y: d.cy,
        shape: "box", color: COLORS.dataset, font: { bold: true }, widthConstraint: { minimum: 160 } };
    });
    data.columns.forEach(function (c) {
      nodes.push({ id: c.id, label: shortLabel(c.name, 36), title: fullName(c) + (c.type ? "\n" + c.type : ""),
        x: c.x, y: c.y, shape: "box", color: COLORS.column, font: { size: 12 }, widthConstraint: { minimum: 160 } });
    });
    var edges = data.columnEdges.map(function (e) {
      return { from: e[0], to: e[1], title: e[2], dashes: !e[3], direct: !!e[3],
        color: { color: e[4] ? "#16a34a" : (e[3] ? "#475569" : "#94a3b8") } };
    });
    return { nodes: nodes, edges: edges };
  }

  var views = { table: null, column: null };
  var current = "table";
  var nodeSet = null;
  var edgeSet = null;

  function visibleEdges() {
    var all = views[current].edges;
    return current === "column" && !indirectBox.checked ? all.filter(function (e) { return e.direct; }) : all;
  }

  var network = new vis.Network(canvas, { nodes: [], edges: [] }, {
    autoResize: true,
    physics: { enabled: false },
    layout: { improvedLayout: false, hierarchical: false },
    interaction: { hover: !big, tooltipDelay: 250, hideEdgesOnDrag: big, hideEdgesOnZoom: big, multiselect: false },
    nodes: { font: { face: "system-ui, sans-serif", size: 14, color: "#0f172a" }, borderWidth: 1 },
    edges: { arrows: { to: { enabled: true, scaleFactor: 0.5 } }, smooth: edgeStyle, color: { color: "#475569" }, width: 1 }
  });

  var firstDraw = null;
  var hook = {
    get firstDrawMs() { return firstDraw; },
    view: function () { return current; },
    nodeCount: function () { return nodeSet ? nodeSet.length : 0; },
    edgeCount: function () { return edgeSet ? edgeSet.length : 0; },
    matchCount: function () { return lastMatches.length; },
    selected: function () { return selectedId; },
    idOf: function (name) {
      var found = null;
      byId.forEach(function (item, id) { if (found === null && fullName(item) === name) { found = id; } });
      return found;
    },
    domPosition: function (id) {
      var p = network.canvasToDOM(network.getPosition(id));
      return { x: p.x, y: p.y };
    },
    scale: function () { return network.getScale(); },
    // Every drawn node: its label, font size and box on the page (CSS pixels, canvas-relative).
    nodes: function () {
      return nodeSet.get().map(function (node) {
        var box = network.getBoundingBox(node.id);
        var a = network.canvasToDOM({ x: box.left, y: box.top });
        var b = network.canvasToDOM({ x: box.right, y: box.bottom });
        var font = (node.font && node.font.size) || 14;
        return { id: node.id, label: node.label, name: fullName(byId.get(node.id)), fontPx: font * network.getScale(),
          links: network.getConnectedNodes(node.id).length, left: a.x, top: a.y, right: b.x, bottom: b.y };
      });
    }
  };
  window.lineageGraph = Object.freeze(hook);

  network.once("afterDrawing", function () {
    // The canvas gets its final size only once the page is laid out: fit again then.
    network.fit({ animation: false });
    firstDraw = performance.now();
    root.setAttribute("data-ready", "true");
  });

  function showView(name) {
    current = name;
    if (!views[name]) { views[name] = name === "table" ? tableView() : columnView(); }
    nodeSet = new vis.DataSet(views[name].nodes);
    edgeSet = new vis.DataSet(visibleEdges());
    network.setData({ nodes: nodeSet, edges: edgeSet });
    root.setAttribute("data-view", name);
    root.setAttribute("data-node-count", String(nodeSet.length));
    toggles.forEach(function (b) { b.setAttribute("aria-pressed", String(b.value === name)); });
    applySearch();
    network.fit({ animation: false });
  }

  toggles.forEach(function (b) {
    b.addEventListener("click", function () { if (b.value !== current) { showView(b.value); } });
  });
  indirectBox.addEventListener("change", function () {
    edgeSet.clear();
    edgeSet.add(visibleEdges());
  });

  // ------------------------------------------------------------------ search

  var lastMatches = [];
  var searchTimer = null;

  function applySearch() {
    var query = searchBox.value.trim().toLowerCase();
    var updates = [];
    lastMatches = [];
    nodeSet.forEach(function (node) {
      var item = byId.get(node.id);
      var hit = query !== "" && fullName(item).toLowerCase().indexOf(query) !== -1;
      if (hit) { lastMatches.push(item); }
      updates.push({ id: node.id, opacity: query === "" || hit ? 1 : 0.15, borderWidth: hit ? 3 : 1 });
    });
    nodeSet.update(updates);
    root.setAttribute("data-match-count", String(lastMatches.length));
    countLabel.textContent = query === "" ? nodeSet.length + " nodes" : lastMatches.length + " of " + nodeSet.length + " match";
    results.replaceChildren();
    if (query === "") { return; }
    lastMatches.slice(0, MAX_RESULTS).forEach(function (item) {
      var li = document.createElement("li");
      li.textContent = fullName(item);
      li.addEventListener("click", function () { results.replaceChildren(); select(item.id, true); });
      results.appendChild(li);
    });
  }

  searchBox.addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(applySearch, 120);
  });
  searchBox.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && lastMatches.length) { results.replaceChildren(); select(lastMatches[0].id, true); }
    if (ev.key === "Escape") { searchBox.value = ""; applySearch(); }
  });

  // ------------------------------------------------------------------ selection and panel

  var selectedId = null;

  function select(id, center) {
    var item = byId.get(id);
    if (!item) { return; }
    if (!nodeSet.get(id)) { showView(item.kind === "column" ? "column" : "table"); }
    selectedId = id;
    network.selectNodes([id]);
    if (center) {
      // Pan to the node; zoom in only when labels would be unreadable.
      var scale = network.getScale();
      network.moveTo({ position: network.getPosition(id), scale: scale < 0.6 ? 0.9 : scale, animation: false });
    }
    renderPanel(item);
  }

  network.on("click", function (params) {
    if (params.nodes.length) { select(params.nodes[0], false); }
  });

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }

  function section(title, entries, render) {
    panel.appendChild(el("h3", title + " (" + entries.length + ")"));
    if (!entries.length) { panel.appendChild(el("p", "none", "lg-meta")); return; }
    var list = el("ul");
    entries.forEach(function (entry) { list.appendChild(render(entry)); });
    panel.appendChild(list);
  }

  function link(id, meta) {
    var li = el("li");
    var a = el("span", fullName(byId.get(id)), "lg-link");
    a.setAttribute("role", "link");
    a.setAttribute("data-node", id);
    a.addEventListener("click", function () { select(id, true); });
    li.appendChild(a);
    if (meta) { li.appendChild(el("span", " " + meta, "lg-meta")); }
    return li;
  }

  function renderPanel(item) {
    panel.replaceChildren();
    panel.setAttribute("data-node", item.id);
    panel.appendChild(el("h2", fullName(item)));
    if (item.kind === "dataset") {
      panel.appendChild(el("p", "dataset \u00b7 " + item.ns, "lg-sub"));
      if (item.desc) { panel.appendChild(el("p", item.desc)); }
      if (item.owners.length) { panel.appendChild(el("p", "owners: " + item.owners.join(", "), "lg-meta")); }
      if (item.tags.length) { panel.appendChild(el("p", "tags: " + item.tags.join(", "), "lg-meta")); }
      section("Columns", item.cols, function (id) {
        var c = byId.get(id);
        var li = link(id, c.type || "");
        li.firstChild.textContent = c.name;
        li.classList.add("lg-column");
        return li;
      });
      section("Upstream", item.up, function (id) { return link(id); });
      section("Downstream", item.down, function (id) { return link(id); });
      section("Written by", item.prod, function (id) { return link(id, byId.get(id).state); });
      section("Read by", item.cons, function (id) { return link(id, byId.get(id).state); });
    } else if (item.kind === "job") {
      panel.appendChild(el("p", "job \u00b7 " + item.ns + (item.state ? " \u00b7 " + item.state : ""), "lg-sub"));
      if (item.group) { panel.appendChild(el("p", "part of pipeline " + item.group, "lg-meta")); }
      section("Inputs", item.ins, function (id) { return link(id); });
      section("Outputs", item.outs, function (id) { return link(id); });
      if (item.sql) { panel.appendChild(el("h3", "SQL")); panel.appendChild(el("pre", item.sql)); }
    } else {
      panel.appendChild(el("p", "column" + (item.type ? " \u00b7 " + item.type : ""), "lg-sub"));
      var ds = el("p");
      ds.appendChild(el("span", "of "));
      ds.appendChild(link(item.ds).firstChild);
      panel.appendChild(ds);
      if (item.tags.length) { panel.appendChild(el("p", "tags: " + item.tags.join(", "), "lg-meta")); }
      section("Upstream columns", colUp.get(item.id) || [], function (e) { return link(e.id, e.how); });
      section("Downstream columns", colDown.get(item.id) || [], function (e) { return link(e.id, e.how); });
    }
  }

  // ------------------------------------------------------------------ start

  showView("table");
  // A focused dataset is selected (its panel open) with the whole graph in view: in a
  // report the point is to see everything upstream of it.
  if (data.focus && byId.has(data.focus)) { select(data.focus, false); }
})();
