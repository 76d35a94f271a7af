// The reports' charts: every <div class="desk-chart" data-chart='{...}'> (views/reports.py
// ``chart``) is drawn with the product's own copy of Apache ECharts (vendor/echarts), as SVG so
// that it prints sharp. The value axis starts at 0 and is scaled to the data, or runs to the
// given maximum (100 for rates in percent, 5 for scores) unless a value is higher: a 0.4% rate is
// a sliver, never a full bar. Hovering shows the values; every text comes from the server, in the
// user's language. The table under each chart holds the same figures.
(function () {
  "use strict";
  if (!window.echarts) { return; }
  var lang = (document.querySelector('meta[name="desk-lang"]') || {}).content || "zh";
  var esc = window.echarts.format.encodeHTML;
  var charts = [];

  // Values as the tables write them (the spec's decimals); the axis without needless decimals.
  function formatter(spec, axis) {
    var digits = spec.decimals || 0;
    var nf = new Intl.NumberFormat(lang === "en" ? "en-US" : "zh-CN", {
      minimumFractionDigits: axis ? 0 : digits, maximumFractionDigits: digits
    });
    return function (v) {
      if (v === null || v === undefined || v === "-" || (typeof v === "number" && isNaN(v))) { return "—"; }
      return nf.format(v) + (spec.unit || "");
    };
  }

  // The data's range, [lowest, highest]; a stacked chart's highest is its tallest stack.
  function dataRange(spec) {
    var low = 0, top = 0;
    var sums = [];
    spec.series.forEach(function (s) {
      s.data.forEach(function (v, i) {
        if (typeof v !== "number") { return; }
        sums[i] = (sums[i] || 0) + v;
        low = Math.min(low, spec.stack ? Math.min(sums[i], v) : v);
        top = Math.max(top, spec.stack ? sums[i] : v);
      });
    });
    return [low, top];
  }

  function tooltip(spec, fmt) {
    return function (params) {
      if (!params.length) { return ""; }
      var i = params[0].dataIndex;
      var lines = ["<strong>" + esc(spec.categories[i]) + "</strong>"];
      var sum = 0;
      params.forEach(function (p) {
        if (typeof p.value === "number") { sum += p.value; }
        lines.push(p.marker + esc(p.seriesName) + '：<span class="desk-chart-value">' + esc(fmt(p.value)) + "</span>");
      });
      if (spec.stack && spec.total && params.length > 1) {
        lines.push(esc(spec.total) + '：<span class="desk-chart-value">' + esc(fmt(sum)) + "</span>");
      }
      ((spec.details || [])[i] || []).forEach(function (d) { lines.push(esc(d)); });
      return lines.join("<br>");
    };
  }

  function option(spec) {
    var fmt = formatter(spec);
    var axisFmt = formatter(spec, true);
    var many = spec.series.length > 1;
    var range = dataRange(spec);
    var valueAxis = {
      type: "value",
      min: range[0],  // 0, or lower only for a negative figure: the axis is never cut
      minInterval: spec.decimals ? 0 : 1,  // counts: whole ticks only
      axisLabel: { formatter: function (v) { return axisFmt(v); } },
      splitLine: { lineStyle: { color: "#e5e5e5" } }
    };
    if (typeof spec.max === "number") {
      valueAxis.max = Math.max(spec.max, range[1]);
    } else if (range[1] === 0) {
      valueAxis.max = 1;  // nothing to show: an axis 0..1, not one invented from nothing
    }
    var categoryAxis = {
      type: "category",
      data: spec.categories,
      inverse: !!spec.horizontal,  // the first row on top, as in the table
      axisTick: { alignWithLabel: true },
      axisLabel: spec.horizontal ? { width: 160, overflow: "truncate" } : { hideOverlap: true }
    };
    var labelled = !many && spec.categories.length <= 24;
    return {
      animationDuration: 300,
      color: ["#3c78b4", "#4a9a5a", "#e0a030", "#b4543c", "#8a6db4", "#3aa6a6", "#c06c9c", "#7f8c8d"],
      textStyle: { fontFamily: "inherit" },
      title: { text: spec.title, left: 0, top: 0, padding: 0, textStyle: { fontSize: 13, fontWeight: "normal", color: "#333" } },
      legend: many ? { top: 24, left: 0, padding: 0, type: "scroll" } : undefined,
      grid: { left: 8, right: spec.horizontal ? 72 : 16, top: many ? 62 : 40, bottom: 8, containLabel: true },
      tooltip: {
        trigger: "axis",
        axisPointer: { type: "shadow" },
        confine: true,
        className: "desk-chart-tip",
        formatter: tooltip(spec, fmt)
      },
      xAxis: spec.horizontal ? valueAxis : categoryAxis,
      yAxis: spec.horizontal ? categoryAxis : valueAxis,
      series: spec.series.map(function (s) {
        return {
          type: spec.type === "line" ? "line" : "bar",
          name: s.name,
          data: s.data,
          stack: spec.stack ? "all" : undefined,
          barMaxWidth: 40,
          label: {
            show: labelled,
            position: spec.horizontal ? "right" : "top",
            formatter: function (p) { return p.value ? fmt(p.value) : ""; },  // no "0" over nothing
            fontSize: 11
          },
          emphasis: { focus: many ? "series" : "none" }
        };
      })
    };
  }

  // The drawn size as the SVG's viewBox too, so that print styles can scale a chart down to the
  // paper (ECharts' own SVG has a fixed width and no viewBox; it leaves this attribute alone).
  function fit(chart, size) {
    if (size) {
      chart.resize({ width: size.width, height: size.height, animation: { duration: 0 } });
      // Painted now, not at the next frame: a page being printed gets no next frame.
      chart.getZr().refreshImmediately();
    } else if (size === null) {
      chart.resize();
    }
    var svg = chart.getDom().querySelector("svg");
    if (svg) { svg.setAttribute("viewBox", "0 0 " + chart.getWidth() + " " + chart.getHeight()); }
  }

  function draw(el) {
    var spec;
    try { spec = JSON.parse(el.getAttribute("data-chart")); } catch (e) { return; }
    if (!spec.categories.length || !spec.series.length) {
      el.classList.add("desk-chart-empty");
      el.style.height = "auto";
      el.textContent = spec.title + "：" + spec.empty;
      el.setAttribute("data-chart-ready", "1");
      return;
    }
    var chart = window.echarts.init(el, null, { renderer: "svg", locale: lang === "en" ? "EN" : "ZH" });
    chart.on("finished", function () { el.setAttribute("data-chart-ready", "1"); });
    chart.setOption(option(spec));
    fit(chart);
    charts.push(chart);
  }

  // On paper (A4 less its margins is about 700 px) a chart is drawn at most this wide.
  var PRINT_WIDTH = 680;
  var printing = false;

  function resize() { charts.forEach(function (c) { fit(c, null); }); }

  function toPaper() {
    if (printing) { return; }
    printing = true;
    charts.forEach(function (c) {
      if (c.getWidth() > PRINT_WIDTH) { fit(c, { width: PRINT_WIDTH, height: c.getHeight() }); }
    });
  }

  function toScreen() {
    if (!printing) { return; }
    printing = false;
    charts.forEach(function (c) { fit(c, { width: "auto", height: "auto" }); });
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll(".desk-chart[data-chart]"), draw);
    var pending;
    window.addEventListener("resize", function () {
      if (printing) { return; }
      clearTimeout(pending);
      pending = setTimeout(resize, 100);
    });
    window.addEventListener("beforeprint", toPaper);
    window.addEventListener("afterprint", toScreen);
    if (window.matchMedia) {
      var print = window.matchMedia("print");
      var follow = function (e) { if (e.matches) { toPaper(); } else { toScreen(); } };
      if (print.addEventListener) { print.addEventListener("change", follow); }
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
