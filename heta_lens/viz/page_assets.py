"""The page's inline stylesheet and script (:mod:`heta_lens.viz.page`): kept apart from the
HTML builder so that each file holds one concept."""

from heta_lens.viz.cells import DARK, heat_js
from heta_lens.viz.maps import CSS as MAPS_CSS

CSS = (
    """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:14px;color:#111}
h1{font-size:17px;margin:0 0 10px}
section.heta{border:1px solid #ddd;border-radius:6px;padding:8px 12px 10px;margin:0 0 12px}
h2{font-size:15px;font-weight:600;margin:0 0 6px}
h2 small{font-weight:400;color:#666;margin-left:6px}
.tgt{font-family:ui-monospace,monospace;background:#111;color:#fff;padding:0 5px;border-radius:3px}
.bar{font-size:12px;color:#555;margin:0 0 6px}
button{font:inherit;border:1px solid #bbb;background:#f5f5f5;border-radius:4px;
 padding:1px 8px;margin-right:3px;cursor:pointer}
button.on{background:#222;color:#fff;border-color:#222}
.views{margin-right:10px}
.scale{margin-left:8px}
.toks{font-family:ui-monospace,monospace;line-height:2.1}
.tok{padding:2px 3px;margin:0 1px;border:1px solid #e3e3e3;border-radius:3px;white-space:pre}
.tok.target{outline:2px solid #111;font-weight:700;background:#fff}
.tok.target::after{content:" \\25C0  target";font-weight:400;font-size:11px;color:#666}
table{border-collapse:collapse;font-size:12px;margin-top:8px}
th,td{padding:1px 8px;text-align:right;border-bottom:1px solid #eee}
th{color:#555;font-weight:600}
.t{text-align:left;font-family:ui-monospace,monospace}
"""
    + MAPS_CSS
)

JS = """
(function () {
HEAT  document.querySelectorAll("section.heta").forEach(function (sec) {
    var buttons = sec.querySelectorAll("button[data-comp]");
    var views = sec.querySelectorAll("button[data-view]");
    function showMax() {
      var on = sec.querySelector("button[data-comp].on");
      var key = sec.getAttribute("data-view") === "group" ? "data-gmax" : "data-max";
      sec.querySelector(".max").textContent = on.getAttribute(key);
    }
    views.forEach(function (btn) {
      btn.addEventListener("click", function () {
        var view = btn.getAttribute("data-view");
        views.forEach(function (b) { b.classList.toggle("on", b === btn); });
        sec.setAttribute("data-view", view);
        sec.querySelectorAll("[data-pane]").forEach(function (p) {
          p.hidden = p.getAttribute("data-pane") !== view;
        });
        showMax();
      });
    });
    buttons.forEach(function (btn) {
      btn.addEventListener("click", function () {
        var comp = btn.getAttribute("data-comp");
        buttons.forEach(function (b) { b.classList.toggle("on", b === btn); });
        sec.querySelectorAll(".tok:not(.target)").forEach(function (t) {
          var v = parseFloat(t.getAttribute("data-" + comp) || "0");
          t.style.background = heat(v);
          t.style.color = Math.min(Math.abs(v), 1) > DARK ? "#fff" : "#111";
        });
        showMax();
      });
    });
  });
})();
""".replace("HEAT", heat_js()).replace("DARK", str(DARK))
