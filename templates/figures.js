// The report's figures made interactive. Each <figure> whose SVG is followed by a
// <script type="application/json" class="figure-data"> is redrawn from that data, with:
// hover values, a legend (in the SVG, so downloads and prints keep it) whose entries hide
// and show their lines, a log/linear switch,
// a smoothing slider (training curves), each seed's curves on demand, and SVG and PNG
// downloads. Without JavaScript the SVG the report drew stays as it is (print, e-mail).
// Our own few hundred lines rather than a charting library: the page stays one small
// file that fetches nothing, and the figures look as the report's static ones do.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var W = 560, H = 380;
  var M = { left: 64, right: 14, top: 40, bottom: 46 };
  var SUPERSCRIPT = { "-": "⁻", "0": "⁰", "1": "¹", "2": "²", "3": "³", "4": "⁴",
    "5": "⁵", "6": "⁶", "7": "⁷", "8": "⁸", "9": "⁹" };

  function svgNode(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }

  function htmlNode(name, attrs, parent, text) {
    var node = document.createElement(name);
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  // The report's own smoothing (crates/report/src/chart.rs `smooth`): an exponential
  // moving average, bias-corrected so the first values are not pulled towards zero.
  function smooth(values, weight) {
    var ema = 0;
    return values.map(function (v, i) {
      ema = weight * ema + (1 - weight) * v;
      return ema / (1 - Math.pow(weight, i + 1));
    });
  }

  function finite(v) { return typeof v === "number" && isFinite(v); }

  // A few significant digits, thousands separated ("1,400", "0.25").
  function significant(v, digits) {
    if (v === 0) return "0";
    return Number(v.toPrecision(digits)).toLocaleString("en-US", { maximumFractionDigits: 12 });
  }

  function powerOfTen(exponent) {
    if (exponent === 0) return "1";
    if (exponent === 1) return "10";
    return "10" + String(exponent).split("").map(function (c) { return SUPERSCRIPT[c]; }).join("");
  }

  // Tooltip numbers: percentages with two decimals, as the report's tables write them;
  // other values with three significant digits, very large or small ones as a × 10ⁿ.
  function valueText(v, unit) {
    if (!finite(v)) return "–";
    if (unit === "%") return v.toFixed(2) + " %";
    var a = Math.abs(v);
    if (a !== 0 && (a < 0.01 || a >= 10000)) {
      var e = Math.floor(Math.log10(a));
      return significant(v / Math.pow(10, e), 3) + " × " + powerOfTen(e);
    }
    return significant(v, 3);
  }

  function niceStep(span, count) {
    var raw = span / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * mag >= raw) return steps[i] * mag;
    return 10 * mag;
  }

  function linearTicks(lo, hi, count, whole) {
    var step = niceStep(hi - lo || 1, count);
    if (whole) step = Math.max(1, Math.round(step));
    var ticks = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
      ticks.push({ at: t, text: significant(Math.abs(t) < step * 1e-9 ? 0 : t, 4) });
    }
    return ticks;
  }

  // Ticks of a log axis (values are log10 of the data): whole decades where the axis
  // spans a decade or more, else 1, 2 and 5 times them.
  function logTicks(lo, hi) {
    var ticks = [], e;
    if (hi - lo >= 1) {
      for (e = Math.ceil(lo); e <= Math.floor(hi); e++) ticks.push({ at: e, text: powerOfTen(e) });
      return ticks;
    }
    for (e = Math.floor(lo); e <= Math.ceil(hi); e++) {
      [1, 2, 5].forEach(function (m) {
        var at = e + Math.log10(m);
        if (at >= lo && at <= hi) ticks.push({ at: at, text: significant(m * Math.pow(10, e), 3) });
      });
    }
    return ticks;
  }

  function Chart(figure, data, oldSvg) {
    this.figure = figure;
    this.data = data;
    this.log = data.log_y;
    this.smoothing = data.smoothing === null ? 0 : data.smoothing;
    this.showSeeds = false;
    this.hidden = {};
    this.groups = [];
    var self = this;
    // A legend entry per group; its swatch is dashed when every line of the group is (a
    // residual net's diagnostics), solid otherwise (a depth's training and test error).
    data.series.forEach(function (s) {
      var group = self.groups.filter(function (g) { return g.name === s.group; })[0];
      if (group) group.dashed = group.dashed && s.dashed;
      else self.groups.push({ name: s.group, color: s.color, dashed: s.dashed });
    });
    figure.classList.add("interactive");
    this.controls = htmlNode("div", { "class": "figure-controls" });
    figure.insertBefore(this.controls, oldSvg);
    this.buildControls();
    this.svg = svgNode("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H,
      xmlns: NS, "font-family": "sans-serif", role: "img" });
    figure.replaceChild(this.svg, oldSvg);
    this.tooltip = htmlNode("div", { "class": "figure-tooltip", hidden: "" }, figure);
    this.svg.addEventListener("mousemove", function (e) { self.hover(e); });
    this.svg.addEventListener("mouseleave", function () { self.unhover(); });
    this.draw();
  }

  Chart.prototype.buildControls = function () {
    var self = this, c = this.controls;
    var logLabel = htmlNode("label", {}, c);
    var log = htmlNode("input", { type: "checkbox", "class": "log-axis" }, logLabel);
    log.checked = this.log;
    logLabel.appendChild(document.createTextNode(" log axis"));
    log.addEventListener("change", function () { self.log = log.checked; self.draw(); });
    if (this.data.smoothing !== null) {
      var smoothLabel = htmlNode("label", {}, c, "smoothing ");
      var slider = htmlNode("input", { type: "range", min: "0", max: "0.95", step: "0.05",
        "class": "smoothing" }, smoothLabel);
      slider.value = String(this.smoothing);
      var shown = htmlNode("output", {}, smoothLabel, this.smoothing.toFixed(2));
      slider.addEventListener("input", function () {
        self.smoothing = Number(slider.value);
        shown.textContent = self.smoothing.toFixed(2);
        self.draw();
      });
    }
    var hasSeeds = this.data.series.some(function (s) { return s.seeds && s.seeds.length > 1; });
    if (hasSeeds) {
      var seedLabel = htmlNode("label", {}, c);
      var seeds = htmlNode("input", { type: "checkbox", "class": "each-seed" }, seedLabel);
      seedLabel.appendChild(document.createTextNode(" each seed"));
      seeds.addEventListener("change", function () { self.showSeeds = seeds.checked; self.draw(); });
    }
    htmlNode("button", { type: "button", "class": "download-svg" }, c, "SVG")
      .addEventListener("click", function () { self.download("svg"); });
    htmlNode("button", { type: "button", "class": "download-png" }, c, "PNG")
      .addEventListener("click", function () { self.download("png"); });
  };

  // The legend inside the plot, as the report's static figures have it: upper left on
  // the depth chart (its lines rise to the right), upper right elsewhere. Each entry is
  // a button: a hidden group stays listed, greyed, so it can be shown again.
  Chart.prototype.drawLegend = function () {
    var self = this, rowH = 18;
    var width = 36 + 7.2 * Math.max.apply(null, this.groups.map(function (g) { return g.name.length; }));
    var height = 8 + rowH * this.groups.length;
    var x = this.data.x_name === "depth" ? M.left + 8 : W - M.right - width - 8, y = M.top + 8;
    var legend = svgNode("g", { "class": "legend", "font-size": 13 }, this.svg);
    svgNode("rect", { x: x, y: y, width: width, height: height, fill: "#ffffff", "fill-opacity": 0.85,
      stroke: "#000", "stroke-opacity": 0.4 }, legend);
    this.groups.forEach(function (g, k) {
      var hidden = !!self.hidden[g.name], cy = y + 4 + rowH * k + rowH / 2;
      var entry = svgNode("g", { "class": "legend-entry", "data-group": g.name, role: "button",
        tabindex: "0", "aria-pressed": hidden ? "false" : "true", cursor: "pointer",
        opacity: hidden ? 0.35 : 1 }, legend);
      svgNode("rect", { x: x + 2, y: cy - rowH / 2, width: width - 4, height: rowH, fill: "#ffffff", "fill-opacity": 0 }, entry);
      var swatch = { x1: x + 6, x2: x + 26, y1: cy, y2: cy, stroke: g.color, "stroke-width": g.dashed ? 2 : 3 };
      if (g.dashed) swatch["stroke-dasharray"] = "6 4";
      svgNode("line", swatch, entry);
      svgNode("text", { x: x + 31, y: cy + 4.5 }, entry).textContent = g.name;
      var toggle = function () { self.hidden[g.name] = !self.hidden[g.name]; self.draw(); };
      entry.addEventListener("click", toggle);
      entry.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); }
      });
    });
  };

  // The lines as drawn now: smoothed where the figure smooths, each seed's own where
  // asked for, hidden groups left out. Points keep their index into the data.
  Chart.prototype.lines = function () {
    var self = this, out = [];
    var prepare = function (points) {
      var ys = points.map(function (p) { return p[1]; });
      if (self.data.smoothing !== null && self.smoothing > 0) ys = smooth(ys, self.smoothing);
      return points.map(function (p, i) { return { x: p[0], y: ys[i], raw: p[1], i: i }; });
    };
    this.data.series.forEach(function (s) {
      if (self.hidden[s.group]) return;
      if (self.showSeeds && s.seeds) {
        s.seeds.forEach(function (seed) {
          out.push({ series: s, seed: seed.label, points: prepare(seed.points), thin: true });
        });
      }
      out.push({ series: s, seed: null, points: prepare(s.points), thin: false });
    });
    return out;
  };

  Chart.prototype.scales = function (lines) {
    var self = this, xs = [], ys = [];
    this.data.series.forEach(function (s) { s.points.forEach(function (p) { xs.push(p[0]); }); });
    lines.forEach(function (line) {
      line.points.forEach(function (p) {
        var sd = line.thin ? 0 : (line.series.sd && line.series.sd[p.i]) || 0;
        [p.y - sd, p.y + sd, p.y].forEach(function (y) {
          if (finite(y) && (!self.log || y > 0)) ys.push(self.log ? Math.log10(y) : y);
        });
      });
    });
    var xlo = Math.min.apply(null, xs.filter(finite)), xhi = Math.max.apply(null, xs.filter(finite));
    if (!finite(xlo)) { xlo = 0; xhi = 1; }
    if (xhi - xlo < 1) { xhi = xlo + 1; }
    var pad = this.data.x_name === "depth" ? Math.max(1, (xhi - xlo) * 0.05) : 0;
    xlo -= pad; xhi += pad;
    var ylo = ys.length ? Math.min.apply(null, ys) : 0, yhi = ys.length ? Math.max.apply(null, ys) : 1;
    if (this.log) {
      var lpad = Math.max((yhi - ylo) * 0.08, 0.1);
      ylo -= lpad; yhi += lpad;
    } else {
      ylo = Math.min(0, ylo);
      yhi = yhi + Math.max((yhi - ylo) * 0.05, 1e-3);
      if (this.data.y_unit === "%") yhi = Math.min(Math.max(yhi, 1), 100);
    }
    if (yhi <= ylo) yhi = ylo + 1;
    var x0 = M.left, x1 = W - M.right, y0 = H - M.bottom, y1 = M.top;
    return {
      xlo: xlo, xhi: xhi, ylo: ylo, yhi: yhi,
      x: function (v) { return x0 + (v - xlo) / (xhi - xlo) * (x1 - x0); },
      y: function (v) { return y0 - ((self.log ? Math.log10(v) : v) - ylo) / (yhi - ylo) * (y0 - y1); }
    };
  };

  Chart.prototype.draw = function () {
    var self = this, svg = this.svg, d = this.data;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("data-log", this.log ? "true" : "false");
    svgNode("rect", { x: 0, y: 0, width: W, height: H, fill: "#ffffff" }, svg);
    svgNode("text", { x: W / 2, y: 24, "text-anchor": "middle", "font-size": 20 }, svg)
      .textContent = d.title;
    var lines = this.lines(), sc = this.scales(lines);
    var axes = svgNode("g", { "class": "axes", "font-size": 13, fill: "#000" }, svg);
    var xt = linearTicks(sc.xlo, sc.xhi, 10, true);
    var yt = this.log ? logTicks(sc.ylo, sc.yhi) : linearTicks(sc.ylo, sc.yhi, 8, false);
    xt.forEach(function (t) {
      var x = sc.x(t.at);
      svgNode("line", { x1: x, x2: x, y1: M.top, y2: H - M.bottom, stroke: "#000", "stroke-opacity": 0.1 }, axes);
      svgNode("text", { x: x, y: H - M.bottom + 16, "text-anchor": "middle" }, axes).textContent = t.text;
    });
    yt.forEach(function (t) {
      var y = H - M.bottom - (t.at - sc.ylo) / (sc.yhi - sc.ylo) * (H - M.bottom - M.top);
      svgNode("line", { x1: M.left, x2: W - M.right, y1: y, y2: y, stroke: "#000", "stroke-opacity": 0.1 }, axes);
      svgNode("text", { x: M.left - 6, y: y + 4, "text-anchor": "end", "class": "y-tick" }, axes).textContent = t.text;
    });
    svgNode("rect", { x: M.left, y: M.top, width: W - M.left - M.right, height: H - M.top - M.bottom,
      fill: "none", stroke: "#000", "stroke-opacity": 0.5 }, axes);
    svgNode("text", { x: (M.left + W - M.right) / 2, y: H - 8, "text-anchor": "middle" }, axes)
      .textContent = d.x_label;
    svgNode("text", { x: 14, y: (M.top + H - M.bottom) / 2, "text-anchor": "middle",
      transform: "rotate(-90 14 " + (M.top + H - M.bottom) / 2 + ")" }, axes)
      .textContent = d.y_label + (this.log ? " (log scale)" : "");

    var plot = svgNode("g", { "class": "lines" }, svg);
    this.hits = [];
    var visible = function (p) { return finite(p.y) && (!self.log || p.y > 0); };
    lines.forEach(function (line) {
      var s = line.series, pts = line.points.filter(visible);
      if (!line.thin && s.sd && s.sd.some(function (v) { return v > 0; })) {
        var lo = pts.map(function (p) { return sc.x(p.x) + "," + sc.y(Math.max(p.y - s.sd[p.i], self.log ? p.y / 1e3 : -Infinity)); });
        var hi = pts.slice().reverse().map(function (p) { return sc.x(p.x) + "," + sc.y(p.y + s.sd[p.i]); });
        svgNode("polygon", { points: lo.concat(hi).join(" "), fill: s.color, "fill-opacity": 0.15 }, plot);
      }
      var attrs = {
        points: pts.map(function (p) { return sc.x(p.x) + "," + sc.y(p.y); }).join(" "),
        fill: "none", stroke: s.color, "stroke-width": line.thin ? 1 : (s.dashed ? 2 : 3),
        "data-group": s.group, "data-kind": s.kind
      };
      if (line.thin) { attrs["stroke-opacity"] = 0.5; attrs["data-seed"] = line.seed; }
      if (s.dashed) attrs["stroke-dasharray"] = "6 4";
      svgNode("polyline", attrs, plot);
      pts.forEach(function (p) {
        var px = sc.x(p.x), py = sc.y(p.y);
        if (s.markers && !line.thin) svgNode("circle", { cx: px, cy: py, r: 3, fill: s.color }, plot);
        self.hits.push({ px: px, py: py, line: line, point: p });
      });
    });
    this.drawLegend();
    this.marker = svgNode("circle", { r: 5, fill: "none", stroke: "#000", "stroke-width": 1.5,
      visibility: "hidden", "class": "hover-marker" }, svg);
  };

  // The value of `series` (or of one of its seeds) at x, as drawn and as stored.
  function valueAt(series, seed, x, chart) {
    var points = series.points;
    if (seed !== null) {
      var own = (series.seeds || []).filter(function (s) { return s.label === seed; })[0];
      if (!own) return null;
      points = own.points;
    }
    var ys = points.map(function (p) { return p[1]; });
    var shown = chart.data.smoothing !== null && chart.smoothing > 0 ? smooth(ys, chart.smoothing) : ys;
    for (var i = 0; i < points.length; i++) {
      if (points[i][0] === x) return { raw: ys[i], shown: shown[i], i: i };
    }
    return null;
  }

  Chart.prototype.hover = function (event) {
    var rect = this.svg.getBoundingClientRect();
    var mx = (event.clientX - rect.left) * W / rect.width, my = (event.clientY - rect.top) * H / rect.height;
    var best = null, bestD = 24 * 24;
    this.hits.forEach(function (h) {
      var dd = (h.px - mx) * (h.px - mx) + (h.py - my) * (h.py - my);
      if (dd < bestD) { bestD = dd; best = h; }
    });
    if (!best) { this.unhover(); return; }
    var self = this, d = this.data, line = best.line, x = best.point.x;
    var tip = this.tooltip;
    tip.textContent = "";
    var head = line.series.group + (line.seed !== null ? " " + line.seed : "");
    if (line.seed === null && line.series.n > 1) head += " (mean of " + line.series.n + " seeds)";
    htmlNode("strong", { "class": "tooltip-run" }, tip, head);
    var where = d.x_name + " " + significant(x, 6);
    var iter = line.series.iterations && line.series.iterations[best.point.i];
    if (finite(iter)) where += " · iteration " + iter.toLocaleString("en-US");
    htmlNode("div", { "class": "tooltip-x" }, tip, where);
    d.series.forEach(function (s) {
      if (s.group !== line.series.group || self.hidden[s.group]) return;
      var v = valueAt(s, line.seed, x, self);
      if (!v) return;
      var text = (s.kind || d.y_label) + ": " + valueText(v.raw, d.y_unit);
      if (line.seed === null && s.sd && s.sd[v.i] > 0) text += " ± " + valueText(s.sd[v.i], d.y_unit);
      if (v.shown !== v.raw) text += " (smoothed " + valueText(v.shown, d.y_unit) + ")";
      htmlNode("div", { "class": "tooltip-value", "data-kind": s.kind }, tip, text);
    });
    tip.hidden = false;
    var figureRect = this.figure.getBoundingClientRect();
    var left = event.clientX - figureRect.left + 14, top = event.clientY - figureRect.top + 14;
    if (left + 220 > figureRect.width) left = Math.max(0, left - 240);
    tip.style.left = left + "px";
    tip.style.top = top + "px";
    this.marker.setAttribute("cx", best.px);
    this.marker.setAttribute("cy", best.py);
    this.marker.setAttribute("visibility", "visible");
  };

  Chart.prototype.unhover = function () {
    this.tooltip.hidden = true;
    if (this.marker) this.marker.setAttribute("visibility", "hidden");
  };

  Chart.prototype.fileName = function (ext) {
    return this.data.title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") + "." + ext;
  };

  Chart.prototype.download = function (kind) {
    var self = this;
    var text = new XMLSerializer().serializeToString(this.svg);
    var save = function (href) {
      var a = htmlNode("a", { href: href, download: self.fileName(kind) }, document.body);
      a.click();
      document.body.removeChild(a);
    };
    if (kind === "svg") {
      save("data:image/svg+xml;charset=utf-8," + encodeURIComponent(text));
      return;
    }
    var image = new Image();
    image.onload = function () {
      var canvas = document.createElement("canvas");
      canvas.width = 2 * W;
      canvas.height = 2 * H;
      var ctx = canvas.getContext("2d");
      ctx.scale(2, 2);
      ctx.drawImage(image, 0, 0, W, H);
      save(canvas.toDataURL("image/png"));
    };
    image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(text);
  };

  function start() {
    var scripts = document.querySelectorAll("script.figure-data");
    window.degradeFigures = [];
    for (var i = 0; i < scripts.length; i++) {
      var data = JSON.parse(scripts[i].textContent), svg = scripts[i].previousElementSibling;
      var figure = scripts[i].parentNode;
      if (!data || !svg || svg.tagName.toLowerCase() !== "svg") continue;
      window.degradeFigures.push(new Chart(figure, data, svg));
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
