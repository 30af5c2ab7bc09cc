// pglock web: refreshes the page's main section in place, every data-refresh-ms, unless the
// operator turned it off, is typing in a form, or is on a confirmation page.
(function () {
  "use strict";
  var body = document.body;
  var every = parseInt(body.getAttribute("data-refresh-ms") || "0", 10);
  var toggle = document.getElementById("auto-refresh");
  if (toggle) {
    toggle.checked = sessionStorage.getItem("pglock-refresh") !== "off";
    toggle.addEventListener("change", function () { sessionStorage.setItem("pglock-refresh", toggle.checked ? "on" : "off"); });
  }
  function busy() {
    var active = document.activeElement;
    if (active && (active.tagName === "INPUT" || active.tagName === "SELECT" || active.tagName === "TEXTAREA")) return true;
    return document.getElementById("confirm") !== null;
  }
  function refresh() {
    if (!toggle || !toggle.checked || busy() || document.hidden) return schedule();
    fetch(window.location.href, { headers: { "X-Console-Fragment": "1" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html !== null) {
          var main = document.getElementById("main");
          main.innerHTML = html;
          body.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () {})
      .then(schedule);
  }
  function schedule() { if (every > 0) window.setTimeout(refresh, every); }
  schedule();
})();
