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
