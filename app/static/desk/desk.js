// The page's language (desk/base.html); select2 (FAB's dropdowns and ours) speaks it too. Set
// before any document-ready handler builds a dropdown.
var DESK_LANG = ($('meta[name="desk-lang"]').attr("content") || "zh");
if ($.fn.select2 && DESK_LANG === "zh") {
  $.fn.select2.defaults.set("language", {
    noResults: function () { return "没有找到匹配项"; },
    searching: function () { return "正在搜索…"; },
    loadingMore: function () { return "正在加载更多…"; },
    errorLoading: function () { return "无法载入结果"; },
    inputTooShort: function (a) { return "请再输入 " + (a.minimum - a.input.length) + " 个字符"; },
    inputTooLong: function (a) { return "请删掉 " + (a.input.length - a.maximum) + " 个字符"; },
    maximumSelected: function (a) { return "最多只能选择 " + a.maximum + " 项"; },
    removeAllItems: function () { return "清除全部"; }
  });
}

// Print buttons (print forms, registers, receipts, letters, permits): no inline handlers, the
// content security policy allows none.
$(document).on("click", "[data-desk-print]", function () { window.print(); });

// Actions that ask first (views/registry.py Action.confirm).
$(document).on("submit", "form[data-desk-confirm]", function (e) {
  if (!window.confirm($(this).data("desk-confirm"))) { e.preventDefault(); }
});

// Relation fields picked by typing (views/lookups.py): 20 matches per request, never a whole table.
$(function () {
  $("select.desk-lookup").each(function () {
    var el = $(this);
    el.select2({
      theme: "bootstrap",
      allowClear: !el.prop("required"),
      placeholder: el.data("placeholder"),
      minimumInputLength: 0,
      ajax: {
        url: el.data("endpoint"),
        dataType: "json",
        delay: 250,
        data: function (params) { return {q: params.term || ""}; },
        processResults: function (data) { return {results: data.results}; }
      }
    });
  });
});

// Ticket form: show the class-specific sections that apply to the chosen class only.
$(function () {
  var kind = $("select#kind");
  if (!kind.length || !$(".panel-group, .panel").length) { return; }
  var sections = {repair: 1, emergency_medical: 2, consultation: 3, complaint: 4};
  function refresh() {
    var panels = kind.closest("form").find(".panel");
    if (panels.length < 5) { return; }
    panels.each(function (i) {
      if (i === 0) { return; }
      $(this).toggle(sections[kind.val()] === i);
    });
  }
  kind.on("change", refresh);
  refresh();
});

// Navbar bell: my unread in-app notifications (same-origin API; the session cookie is accepted).
$(function () {
  var nav = $(".navbar-right").first();
  if (!nav.length || $("#desk-bell").length || !$('meta[name="desk-signed-in"]').length) { return; }
  var item = $('<li id="desk-bell"><a href="/notification/list/?preset=unread" title="' +
    (DESK_LANG === "zh" ? "未读通知" : "Unread notifications") + '">' +
    '<i class="fa fa-bell"></i> <span class="badge desk-unread" style="display:none"></span></a></li>');
  nav.prepend(item);
  $.ajax({url: "/api/v1/notification/unread", dataType: "json", cache: false})
    .done(function (data) {
      var n = (data && data.unread) || 0;
      item.find(".desk-unread").text(n > 99 ? "99+" : String(n)).toggle(n > 0);
    });
});

// Taking a call (desk/ticket_add.html): what the clerk types finds the caller (views/desk.py
// caller); "use" on a unit, or picking the unit on the form, fills estate, unit, owner, caller, phone.
$(function () {
  var card = $(".desk-caller");
  if (!card.length) { return; }
  var form = $("form#model_form, form").filter(function () { return $(this).find("#kind").length; }).first();
  var results = card.find(".desk-caller-results");
  var endpoint = card.data("endpoint");
  var timer = null, last = null, filling = false;
  function show(params) {
    $.ajax({url: endpoint, data: params, dataType: "json", cache: false}).done(function (data) {
      results.html(data.html);
    });
  }
  card.find("#desk-caller-q").on("input", function () {
    var q = $.trim($(this).val());
    clearTimeout(timer);
    if (q === last) { return; }
    timer = setTimeout(function () {
      last = q;
      if (q.length < 2) { results.empty(); return; }
      show({q: q});
    }, 250);
  });
  function pick(select, id, text) {
    if (!select.length || !id) { return; }
    if (!select.find("option[value='" + id + "']").length) {
      select.append(new Option(text, id, false, false));
    }
    select.val(String(id)).trigger("change");
  }
  function setIfEmpty(input, value) {
    if (input.length && value && !$.trim(input.val())) { input.val(value); }
  }
  function fill(b, overwrite) {
    filling = true;
    pick(form.find("select#estate"), b.data("estate-id"), "");
    pick(form.find("select#unit"), b.data("unit-id"), String(b.data("unit-code")));
    if (b.data("owner-id")) { pick(form.find("select#owner"), b.data("owner-id"), String(b.data("owner-name"))); }
    var name = form.find("#visitor_name"), phone = form.find("#visitor_phone");
    if (overwrite) {
      if (b.data("contact-name")) { name.val(b.data("contact-name")); }
      if (b.data("contact-phone")) { phone.val(b.data("contact-phone")); }
    } else {
      setIfEmpty(name, b.data("contact-name"));
      setIfEmpty(phone, b.data("contact-phone"));
    }
    filling = false;
  }
  results.on("click", ".desk-caller-use", function () {
    results.find(".desk-caller-use").removeClass("active");
    $(this).addClass("active");
    fill($(this), true);
  });
  // The unit picked on the form itself: its owner fills the empty fields, and the card shows it.
  form.find("select#unit").on("change", function () {
    var id = $(this).val();
    if (filling || !id) { return; }
    $.ajax({url: endpoint, data: {unit: id}, dataType: "json", cache: false}).done(function (data) {
      results.html(data.html);
      var first = results.find(".desk-caller-use[data-unit-id='" + id + "']").first();
      if (first.length) { fill(first, false); }
    });
  });
});

// Sub-classes are data (ticket_subkind): the form offers only the chosen class's ones, and hides
// the field for a class that has none.
$(function () {
  var data = $("#desk-subkinds");
  var kind = $("select#kind"), sub = $("select#subkind");
  if (!data.length || !kind.length || !sub.length) { return; }
  var kindOf = JSON.parse(data.text() || "{}");
  var all = sub.find("option").clone();
  var group = sub.closest("tr, .form-group");
  function refresh() {
    var k = kind.val(), current = sub.val();
    sub.empty();
    var any = false;
    all.each(function () {
      var v = $(this).attr("value");
      if (!v || kindOf[v] === k || v === current && kindOf[v] === undefined) {
        if (v) { any = true; }
        sub.append($(this).clone());
      }
    });
    sub.val(sub.find("option[value='" + current + "']").length ? current : "").trigger("change.select2");
    group.toggle(any);
  }
  kind.on("change", refresh);
  refresh();
});

// A form field with one sensible value given other fields (views/lookups.py, data-desk-prefill):
// asked again when one of those changes; it never replaces what the user chose.
$(function () {
  $("[data-desk-prefill]").each(function () {
    var el = $(this), form = el.closest("form"), setting = false;
    var deps = String(el.data("desk-depends") || "").split(",").filter(Boolean);
    var auto = el.is("[data-desk-prefilled]");
    el.on("change", function () { if (!setting) { auto = false; } });
    function set(value, text) {
      setting = true;
      // A picker by typing (views/lookups.py) holds only the chosen option: add it first.
      if (value && !el.find("option").filter(function () { return this.value === value; }).length) {
        el.append(new Option(text || value, value, false, false));
      }
      el.val(value).trigger("change");
      setting = false;
    }
    deps.forEach(function (name) {
      form.find("[name='" + name + "']").on("change", function () {
        var chosen = el.val();
        if (chosen && chosen !== "__None" && !auto) { return; }  // the user's own choice stands
        var q = {};
        deps.forEach(function (d) { q[d] = form.find("[name='" + d + "']").val() || ""; });
        $.ajax({url: el.data("desk-prefill"), data: q, dataType: "json", cache: false}).done(function (data) {
          if (data && data.id !== undefined) { set(String(data.id), data.text); auto = true; }
          else if (auto) { set(el.find("option[value='__None']").length ? "__None" : ""); }
        });
      });
    });
  });
});
