// The collect form (desk/collect.html): the total of the ticked bills plus any amount paid in
// advance, kept live as boxes are ticked and the amount typed. Exact cents (integers), never a
// float's rounding; the server computes the payment again from the bills as they are.
(function () {
  var form = document.querySelector("form.desk-collect");
  if (!form) { return; }
  var boxes = form.querySelectorAll("input[type=checkbox][name=bill]");
  var all = form.querySelector(".desk-collect-all");
  var extra = form.querySelector("input[name=extra]");

  function cents(text) {
    var m = /^\s*(\d{1,12})(?:\.(\d{0,2}))?\s*$/.exec(text || "");
    if (!m) { return null; }
    return parseInt(m[1], 10) * 100 + parseInt(((m[2] || "") + "00").slice(0, 2), 10);
  }
  function money(c) {
    var yuan = String(Math.floor(c / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return yuan + "." + String(c % 100 + 100).slice(1);
  }
  function set(selector, text) {
    var el = form.querySelector(selector);
    if (el) { el.textContent = text; }
  }
  function refresh() {
    var sum = 0, n = 0;
    boxes.forEach(function (box) {
      if (box.checked) { sum += cents(box.getAttribute("data-due")) || 0; n += 1; }
    });
    var more = extra && extra.value.trim() ? cents(extra.value) : 0;
    set(".desk-collect-count", String(n));
    set(".desk-collect-bills-total", money(sum));
    set(".desk-collect-total", more === null ? "—" : "¥" + money(sum + more));
    if (all) {
      all.checked = boxes.length > 0 && n === boxes.length;
      all.indeterminate = n > 0 && n < boxes.length;
    }
  }
  // Boxes: on "change" (a checkbox's "input" comes first, before the "all" box's own handler
  // could read it); the amount: as it is typed.
  form.addEventListener("change", function (event) {
    if (all && event.target === all) {
      boxes.forEach(function (box) { box.checked = all.checked; });
    }
    refresh();
  });
  if (extra) { extra.addEventListener("input", refresh); }
  refresh();
})();
