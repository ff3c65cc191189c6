/* Dropline tracking widget: renders a parcel's status and timeline into a
   div and keeps it live over SSE. No dependencies, no external assets.
   Usage: <div data-dropline-carrier="ups" data-dropline-tracking="1Z..."
               data-dropline-token="..."></div>
          <script src="https://NODE/widget.js" async></script>
   or DroplineTracking.render(element, {carrier, trackingNumber, token, postalCode}). */
(function () {
  "use strict";
  var script = document.currentScript;
  var BASE = script && script.src ? new URL(script.src).origin : "";
  var LABELS = { label_created:"Label created", picked_up:"Picked up", in_transit:"In transit",
    out_for_delivery:"Out for delivery", available_for_pickup:"Ready for pickup",
    delivery_attempted:"Delivery attempted", delivered:"Delivered", exception:"Exception",
    returning_to_sender:"Returning to sender", returned_to_sender:"Returned to sender",
    cancelled:"Cancelled", stale:"No recent updates", unknown:"Update received" };
  function label(s) { return s ? (LABELS[s] || s.replace(/_/g, " ")) : "Label created"; }
  function fmt(t) { return t ? new Date(t).toLocaleString(undefined, { month:"short", day:"numeric", hour:"2-digit", minute:"2-digit" }) : ""; }
  function el(tag, css, txt) { var e = document.createElement(tag); if (css) e.style.cssText = css; if (txt != null) e.textContent = txt; return e; }
  function draw(root, v) {
    root.textContent = "";
    var box = el("div", "font:14px/1.4 system-ui,sans-serif;border:1px solid #d9dee3;border-radius:10px;padding:12px;max-width:420px");
    box.appendChild(el("div", "color:#5b6570;font-size:12px", (v.carrier || "").toUpperCase() + " · " + v.tracking_number));
    box.appendChild(el("div", "font-size:20px;font-weight:700;color:" + (v.late || v.status === "exception" ? "#cf222e" : v.status === "delivered" ? "#1a7f37" : "#1b1f24"), label(v.status)));
    if (v.estimated_delivery && v.status !== "delivered") box.appendChild(el("div", "color:#5b6570", "Estimated " + fmt(v.estimated_delivery) + (v.late ? " (late)" : "")));
    if (v.exception && v.exception.action) {
      var a = el("a", "display:inline-block;margin:8px 0;color:#cf222e;font-weight:600", v.exception.action.label);
      a.href = v.exception.action.url; box.appendChild(a);
    }
    if (v.timeline) {
      var ol = el("ol", "list-style:none;margin:8px 0 0;padding:0");
      v.timeline.slice().reverse().forEach(function (ev) {
        var li = el("li", "padding:4px 0;border-top:1px solid #eaeef2");
        li.appendChild(el("div", "font-weight:600", label(ev.status)));
        var where = ev.location ? [ev.location.city, ev.location.region, ev.location.country].filter(Boolean).join(", ") : "";
        li.appendChild(el("div", "color:#5b6570;font-size:12px", fmt(ev.occurred_at) + (where ? " · " + where : "")));
        ol.appendChild(li);
      });
      box.appendChild(ol);
    }
    root.appendChild(box);
  }
  function render(root, o) {
    var q = new URLSearchParams();
    if (o.token) q.set("token", o.token);
    if (o.postalCode) q.set("postal_code", o.postalCode);
    var base = (o.base || BASE) + "/v1/shipments/" + encodeURIComponent(o.carrier) + "/" + encodeURIComponent(o.trackingNumber);
    var qs = q.toString() ? "?" + q : "";
    fetch(base + qs).then(function (r) { return r.ok ? r.json() : null; }).then(function (v) { if (v) draw(root, v); });
    if (window.EventSource) {
      var src = new EventSource(base + "/events" + qs);
      src.addEventListener("shipment", function (m) { draw(root, JSON.parse(m.data)); });
      return { close: function () { src.close(); } };
    }
    return { close: function () {} };
  }
  window.DroplineTracking = { render: render };
  function auto() {
    var nodes = document.querySelectorAll("[data-dropline-tracking]");
    for (var i = 0; i < nodes.length; i++) {
      var n = nodes[i];
      render(n, { carrier: n.getAttribute("data-dropline-carrier"), trackingNumber: n.getAttribute("data-dropline-tracking"),
        token: n.getAttribute("data-dropline-token"), postalCode: n.getAttribute("data-dropline-postal-code") });
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", auto); else auto();
})();
