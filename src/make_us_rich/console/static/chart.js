// The symbol page's chart: candles, the recorded forecasts' 50 %/90 % bounds hour by hour over
// them, and the forecast fan (median, 50 % and 90 % intervals) from the last close through every
// horizon the model serves, on a time axis that runs on to the longest; drawn with TradingView
// Lightweight Charts (vendored). A static file: the CSP forbids inline scripts.
(function () {
  "use strict";
  var el = document.getElementById("chart");
  if (!el) { return; }
  var LWC = window.LightweightCharts;
  var fmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2, minimumFractionDigits: 2 });

  function text(id, value) {
    var node = document.getElementById(id);
    if (node) { node.textContent = value; }
  }

  function fail(message) {
    el.dataset.state = "error";
    var box = document.getElementById("chart-error");
    box.textContent = message;
    box.hidden = false;
  }

  function age(iso) {
    if (!iso) { return "unknown"; }
    var hours = (Date.now() - Date.parse(iso)) / 3600000;
    return hours < 48 ? hours.toFixed(1) + " h" : (hours / 24).toFixed(1) + " days";
  }

  // A band between two prices (the fan's 50 % and 90 % intervals), filled through its points: a
  // custom series of the library, so the data it holds can be read back like any other.
  function BandView(color) {
    var self = this;
    this.color = color;
    this.bars = [];
    this._renderer = {
      draw: function (target, toY) {
        var bars = self.bars;
        if (bars.length < 2) { return; }
        target.useBitmapCoordinateSpace(function (scope) {
          var ctx = scope.context, h = scope.horizontalPixelRatio, v = scope.verticalPixelRatio;
          ctx.beginPath();
          bars.forEach(function (b, i) {
            var y = toY(b.originalData.high) * v;
            if (i) { ctx.lineTo(b.x * h, y); } else { ctx.moveTo(b.x * h, y); }
          });
          for (var i = bars.length - 1; i >= 0; i--) { ctx.lineTo(bars[i].x * h, toY(bars[i].originalData.low) * v); }
          ctx.closePath();
          ctx.fillStyle = self.color;
          ctx.fill();
        });
      }
    };
  }
  BandView.prototype.renderer = function () { return this._renderer; };
  BandView.prototype.update = function (data) { this.bars = data.bars; };
  BandView.prototype.priceValueBuilder = function (row) { return [row.low, row.high]; };
  BandView.prototype.isWhitespace = function (row) { return row.low === undefined || row.high === undefined; };
  BandView.prototype.defaultOptions = function () { return {}; };

  function when(seconds) {
    var d = new Date(seconds * 1000);
    return d.toISOString().slice(5, 16).replace("T", " ") + " UTC";
  }

  // One label per horizon, in the page (not drawn on the canvas: it has a background and
  // wraps), beside the fan: the hour it is for and its 90 % range; moved with the chart.
  function labels(chart, lines, points) {
    var boxes = points.map(function (p, i) {
      var box = document.createElement("div");
      box.className = "fan-label";
      box.dataset.hours = String(p.hours);
      var head = document.createElement("strong");
      head.textContent = "+" + p.hours + " h · " + when(p.time);
      var range = document.createElement("span");
      range.textContent = fmt.format(p.h.interval_90[0]) + " – " + fmt.format(p.h.interval_90[1]) + " (90 %)";
      box.appendChild(head);
      box.appendChild(range);
      el.appendChild(box);
      // alternately above the 95 % line and below the 5 % line, the longest above
      return { box: box, point: p, above: (points.length - 1 - i) % 2 === 0 };
    });
    function place() {
      boxes.forEach(function (b) {
        var x = chart.timeScale().timeToCoordinate(b.point.time);
        var line = b.above ? lines["95 %"] : lines["5 %"];
        var y = line.priceToCoordinate(b.above ? b.point.h.interval_90[1] : b.point.h.interval_90[0]);
        if (x === null || y === null) { b.box.hidden = true; return; }
        b.box.hidden = false;
        b.box.style.left = Math.max(0, x - b.box.offsetWidth) + "px";
        b.box.style.top = Math.max(0, b.above ? y - b.box.offsetHeight - 4 : y + 4) + "px";
      });
    }
    function soon() { window.requestAnimationFrame(place); }
    chart.timeScale().subscribeVisibleLogicalRangeChange(soon);
    chart.timeScale().subscribeSizeChange(soon);
    soon();
  }

  function draw(data) {
    var candles = data.candles;
    var f = data.forecast;
    var last = candles[candles.length - 1];
    var previous = candles.length > 1 ? candles[candles.length - 2] : last;
    var change = last.close - previous.close;
    text("last-close", fmt.format(f.last_close));
    text("change", (change >= 0 ? "+" : "") + fmt.format(change) + " (" +
      (100 * change / previous.close).toFixed(2) + " %)");
    text("median", fmt.format(f.median));
    text("interval-50", fmt.format(f.interval_50[0]) + " – " + fmt.format(f.interval_50[1]));
    text("interval-90", fmt.format(f.interval_90[0]) + " – " + fmt.format(f.interval_90[1]));
    text("forecast-time", f.forecast_time.replace("T", " ").replace("+00:00", " UTC"));
    text("model-version", f.model_version || "unknown");
    text("model-age", age(f.model_created));
    var q = data.quality || {};
    text("quality-pinball", q.pinball_vs_empirical == null ? "n/a" : q.pinball_vs_empirical.toFixed(4));
    text("quality-coverage", q.coverage_90 == null ? "n/a" : (100 * q.coverage_90).toFixed(1) + " %");

    var chart = LWC.createChart(el, {
      autoSize: true,
      // the logo injects a <style> element, which the CSP (style-src 'self') refuses: the page
      // links to TradingView in text instead (the attribution the licence's NOTICE asks for)
      layout: { background: { color: "#ffffff" }, textColor: "#222", attributionLogo: false },
      timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 2 },
      rightPriceScale: { scaleMargins: { top: 0.14, bottom: 0.14 } }
    });
    var series = chart.addSeries(LWC.CandlestickSeries, {
      upColor: "#26a69a", downColor: "#ef5350", borderVisible: false,
      wickUpColor: "#26a69a", wickDownColor: "#ef5350"
    });
    series.setData(candles);
    // the recorded forecasts of past hours: their bounds as steps over the candles
    var past = (data.history || []).filter(function (r) { return r.time <= last.time; });
    var bands = {};
    function band(key, index, color, width) {
      var points = past.map(function (r) { return { time: r.time, value: r[key][index] }; });
      if (!points.length) { return; }
      var line = chart.addSeries(LWC.LineSeries, {
        color: color, lineWidth: width, lineType: LWC.LineType.WithSteps, lastValueVisible: false,
        priceLineVisible: false, crosshairMarkerVisible: false
      });
      line.setData(points);
      bands[key + (index ? " high" : " low")] = line;
    }
    band("interval_90", 0, "rgba(255,143,0,0.55)", 1);
    band("interval_90", 1, "rgba(255,143,0,0.55)", 1);
    band("interval_50", 0, "rgba(230,81,0,0.85)", 2);
    band("interval_50", 1, "rgba(230,81,0,0.85)", 2);
    // the fan: from the last close through each horizon the model serves (1 h, 4 h, 24 h ...),
    // on a time axis that goes on hour by hour past the last candle to the longest horizon
    var horizons = (f.horizons && f.horizons.length) ? f.horizons : [{
      hours: 1, forecast_time: f.forecast_time, median: f.median, quantiles: f.quantiles,
      interval_50: f.interval_50, interval_90: f.interval_90
    }];
    var points = horizons.map(function (h) {
      return { hours: h.hours, time: Math.floor(Date.parse(h.forecast_time) / 1000), h: h };
    });
    var longest = points[points.length - 1].hours;
    var ahead = chart.addSeries(LWC.LineSeries, { visible: false, lastValueVisible: false, priceLineVisible: false });
    var empty = [];
    for (var k = 1; k <= longest; k++) { empty.push({ time: last.time + 3600 * k }); }
    ahead.setData(empty);
    function fanBand(key, color) {
      var series = chart.addCustomSeries(new BandView(color), {
        lastValueVisible: false, priceLineVisible: false, crosshairMarkerVisible: false
      });
      series.setData([{ time: last.time, low: last.close, high: last.close }].concat(points.map(function (p) {
        return { time: p.time, low: p.h[key][0], high: p.h[key][1] };
      })));
      return series;
    }
    var fans = { "90": fanBand("interval_90", "rgba(33,150,243,0.18)"), "50": fanBand("interval_50", "rgba(33,150,243,0.30)") };
    var narrow = el.clientWidth < 560;  // a phone: no titles over the fan, fewer candles
    function fan(pick, color, width, title) {
      var line = chart.addSeries(LWC.LineSeries, {
        color: color, lineWidth: width, lastValueVisible: true, priceLineVisible: false, title: narrow ? "" : title,
        crosshairMarkerVisible: false
      });
      line.setData([{ time: last.time, value: last.close }].concat(points.map(function (p) {
        return { time: p.time, value: pick(p.h) };
      })));
      return line;
    }
    var lines = {
      "5 %": fan(function (h) { return h.interval_90[0]; }, "rgba(33,150,243,0.55)", 1, "5 %"),
      "95 %": fan(function (h) { return h.interval_90[1]; }, "rgba(33,150,243,0.55)", 1, "95 %"),
      "25 %": fan(function (h) { return h.interval_50[0]; }, "rgba(33,150,243,0.8)", 1, "25 %"),
      "75 %": fan(function (h) { return h.interval_50[1]; }, "rgba(33,150,243,0.8)", 1, "75 %")
    };
    var median = lines.median = fan(function (h) { return h.median; }, "#0d47a1", 2, "median");
    LWC.createSeriesMarkers(median, points.map(function (p) {
      return { time: p.time, position: "inBar", color: "#0d47a1", shape: "circle", size: 0.6 };
    }));
    labels(chart, lines, points);
    // the last two days and the whole fan, wide enough to read; the rest by scrolling back
    chart.timeScale().setVisibleLogicalRange({
      from: Math.max(0, candles.length - (narrow ? 24 : 48)), to: candles.length - 1 + longest + Math.max(4, longest / 8)
    });
    // what the chart holds, read back from the library (not the JSON it was given)
    var drawn = {};
    Object.keys(lines).forEach(function (name) { drawn[name] = lines[name].data(); });
    var drawnBands = {};
    Object.keys(bands).forEach(function (name) { drawnBands[name] = bands[name].data(); });
    var drawnFan = {};
    Object.keys(fans).forEach(function (name) { drawnFan[name] = fans[name].data(); });
    window.mkrichChart = {
      candles: series.data(),
      lines: drawn,
      fan: drawnFan,
      axisEnd: null,
      forecast: {
        time: points[0].time, forecast_time: f.forecast_time, median: f.median, quantiles: f.quantiles,
        interval_50: f.interval_50, interval_90: f.interval_90, last_close: f.last_close,
        model_version: f.model_version, horizons: horizons
      },
      quality: q,
      bands: drawnBands,
      coverage: data.coverage
    };
    window.requestAnimationFrame(function () {
      // the last hour the time axis holds and shows (after the library laid the chart out)
      var scale = chart.timeScale();
      var shown = empty.filter(function (w) { return scale.timeToCoordinate(w.time) !== null; });
      window.mkrichChart.axisEnd = shown.length ? shown[shown.length - 1].time : last.time;
      el.dataset.state = "drawn";
    });
  }

  fetch(el.dataset.src, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) { throw new Error(body.error || ("HTTP " + response.status)); }
        return body;
      });
    })
    .then(draw)
    .catch(function (err) { fail("The chart could not be drawn: " + err.message); });
})();
