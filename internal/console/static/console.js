// kdbridge console: confirmations for destructive buttons and "select all". No build step.
document.addEventListener("click", function (e) {
  var b = e.target.closest("button[data-confirm]");
  if (b && !window.confirm(b.getAttribute("data-confirm"))) {
    e.preventDefault();
  }
});
document.addEventListener("change", function (e) {
  if (e.target.id === "all-ids") {
    document.querySelectorAll("input[name=id]").forEach(function (c) { c.checked = e.target.checked; });
  }
});
