// Filters apply as you type or choose (the form also works without this script).
(function () {
  "use strict";
  var form = document.querySelector("form[data-autosubmit]");
  if (!form) { return; }
  var timer = null;
  form.addEventListener("change", function (event) {
    if (event.target && event.target.type !== "search") { form.submit(); }
  });
  form.addEventListener("input", function (event) {
    if (!event.target || event.target.type !== "search") { return; }
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(function () { form.submit(); }, 500);
  });
  var search = form.querySelector("input[type=search]");
  if (search && search.value) {
    search.focus();
    search.setSelectionRange(search.value.length, search.value.length);
  }
})();

// Inside Airflow's UI the page runs in an iframe that may not navigate the window or open a tab itself
// (sandbox without allow-top-navigation and allow-popups). Links to Airflow's own pages (target=_top) and
// to Dynamics (target=_blank) are followed by an anchor in the Airflow page itself: same origin, so allowed.
(function () {
  "use strict";
  if (window.top === window) { return; }
  document.addEventListener("click", function (event) {
    var link = event.target && event.target.closest ? event.target.closest("a[target=_top], a[target=_blank]") : null;
    if (!link || event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) {
      return;
    }
    var outer;
    try { outer = window.top.document; } catch (error) { return; }  // another origin: leave it to the browser
    var proxy = outer.createElement("a");
    proxy.href = link.href;
    proxy.target = link.target;
    if (link.rel) { proxy.rel = link.rel; }
    proxy.style.display = "none";
    outer.body.appendChild(proxy);
    proxy.click();
    proxy.remove();
    event.preventDefault();
  });
})();
