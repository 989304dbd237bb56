// The symbol page's chart: candles, the recorded forecasts' 50 %/90 % bounds hour by hour over
// them, and the next hour's forecast (median and 50 %/90 % intervals) in room left right of the
// last candle; drawn with TradingView Lightweight Charts (vendored). A static file: the CSP
// forbids inline scripts.
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
      // room right of the last candle, so the next hour's fan is not squeezed into the edge
      timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 6 },
      rightPriceScale: { scaleMargins: { top: 0.1, bottom: 0.1 } }
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
    var at = Math.floor(Date.parse(f.forecast_time) / 1000);
    function fan(value, color, width, title) {
      var line = chart.addSeries(LWC.LineSeries, {
        color: color, lineWidth: width, lastValueVisible: true, priceLineVisible: false, title: title
      });
      line.setData([{ time: last.time, value: last.close }, { time: at, value: value }]);
      return line;
    }
    var lines = {
      "5 %": fan(f.interval_90[0], "rgba(33,150,243,0.45)", 1, "5 %"),
      "95 %": fan(f.interval_90[1], "rgba(33,150,243,0.45)", 1, "95 %"),
      "25 %": fan(f.interval_50[0], "rgba(33,150,243,0.8)", 2, "25 %"),
      "75 %": fan(f.interval_50[1], "rgba(33,150,243,0.8)", 2, "75 %")
    };
    var median = lines.median = fan(f.median, "#0d47a1", 3, "median");
    LWC.createSeriesMarkers(median, [{ time: at, position: "inBar", color: "#0d47a1", shape: "circle" }]);
    // the last two days and the forecast hour, wide enough to read; the rest by scrolling back
    chart.timeScale().setVisibleLogicalRange({ from: Math.max(0, candles.length - 48), to: candles.length + 6 });
    // what the chart holds, read back from the library (not the JSON it was given)
    var drawn = {};
    Object.keys(lines).forEach(function (name) { drawn[name] = lines[name].data(); });
    var drawnBands = {};
    Object.keys(bands).forEach(function (name) { drawnBands[name] = bands[name].data(); });
    window.mkrichChart = {
      candles: series.data(),
      lines: drawn,
      forecast: {
        time: at, forecast_time: f.forecast_time, median: f.median, quantiles: f.quantiles,
        interval_50: f.interval_50, interval_90: f.interval_90, last_close: f.last_close,
        model_version: f.model_version
      },
      quality: q,
      bands: drawnBands,
      coverage: data.coverage
    };
    el.dataset.state = "drawn";
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
