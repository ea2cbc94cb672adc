// Progressive enhancement of the storefront: a feedback button posts its form in the background and
// swaps the recommendation list in place (the server renders the partial); without JS the form posts
// and the server redirects back. No third-party code.
(function () {
  "use strict";
  var recs = document.getElementById("recs");
  if (!recs) { return; }
  recs.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.classList || !form.classList.contains("fb")) { return; }
    ev.preventDefault();
    var data = new URLSearchParams(new FormData(form));
    var button = ev.submitter;
    if (button && button.name) { data.set(button.name, button.value); }
    recs.setAttribute("aria-busy", "true");
    // getAttribute: form.action would be the buttons named "action" (DOM named-property shadowing)
    fetch(form.getAttribute("action"), {method: "POST", body: data, headers: {"X-Partial": "recs"}})
      .then(function (resp) { return resp.text(); })
      .then(function (html) { recs.innerHTML = html; })
      .catch(function (err) { recs.insertAdjacentHTML("afterbegin", "<p class=\"error\" role=\"alert\">" + String(err) + "</p>"); })
      .finally(function () { recs.removeAttribute("aria-busy"); });
  });
}());
