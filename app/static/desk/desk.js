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
