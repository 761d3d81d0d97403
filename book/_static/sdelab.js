// The book's own behaviour, loaded on every page.
// A solution's header reads "Solution to Exercise N.M" where "Exercise N.M" is a link to the exercise;
// a click on it (a reader aiming at the header) opens or closes the solution instead of jumping away.
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest(".solution .admonition-title a, .solution summary a");
  if (!link) return;
  var header = link.closest(".admonition-title, summary");
  event.preventDefault();
  event.stopPropagation();
  if (header) header.click();
}, true);
