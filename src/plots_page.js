(function () {
  "use strict";
  var embed = window.vegaEmbed;
  var settled = {rendered: 0, failed: 0};
  function record(outcome) {
    settled[outcome] += 1;
    document.body.setAttribute("data-plots-rendered", String(settled.rendered));
    document.body.setAttribute("data-plots-failed", String(settled.failed));
  }
  function offlineEmbed(element, spec, options) {
    var settings = Object.assign({}, options || {}, {renderer: "svg", actions: false});
    var result = embed(element, spec, settings);
    result.then(function () { record("rendered"); }, function (error) {
      record("failed");
      try {
        var target = typeof element === "string" ? document.querySelector(element) : element;
        var message = document.createElement("pre");
        message.className = "plot-error";
        message.textContent = "This plot could not be drawn: " + error;
        (target || document.body).appendChild(message);
      } catch (ignored) {
        document.body.appendChild(document.createTextNode("A plot could not be drawn: " + error));
      }
    });
    return result;
  }
  Object.assign(offlineEmbed, embed);
  window.vegaEmbed = offlineEmbed;
}());
