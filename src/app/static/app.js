// The prediction form: search-as-you-type pickers (Tom Select, vendored) over plain <select> elements.
// Without JavaScript the selects still work and the form still posts.
(function () {
  "use strict";

  function picker(select) {
    var kind = select.getAttribute("data-picker");
    var options = {
      dataAttr: "data-data",
      maxOptions: 300,
      allowEmptyOption: false,
      selectOnTab: true,
      placeholder: select.options[0] ? select.options[0].text : "",
      render: {
        option: function (data, escape) {
          return '<div><span class="name">' + escape(data.text) + '</span><span class="hint">' +
            escape(data.hint || "") + "</span></div>";
        },
        item: function (data, escape) { return "<div>" + escape(data.text) + "</div>"; },
        no_results: function (data, escape) {
          return '<div class="no-results">No ' + kind + ' matches "' + escape(data.input) + '"</div>';
        },
      },
    };
    var control = new window.TomSelect(select, options);
    if (select.getAttribute("aria-invalid") === "true") control.wrapper.classList.add("is-invalid");
    return control;
  }

  function init() {
    if (!window.TomSelect) return;
    document.querySelectorAll("select[data-picker]").forEach(picker);
    var focused = document.querySelector('[data-focus="true"] .answer, [data-focus="true"] .field-error');
    if (focused && focused.scrollIntoView) focused.scrollIntoView({ block: "nearest" });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
