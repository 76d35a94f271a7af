// Print buttons of the stand-alone print pages (no inline handlers: the content security policy
// allows none).
document.addEventListener("click", function (event) {
  if (event.target.closest && event.target.closest("[data-desk-print]")) { window.print(); }
});
