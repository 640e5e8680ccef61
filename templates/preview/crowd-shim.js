// Offline stand-in for Ground Truth's crowd-html-elements.js (gt-toolkit preview only).
// It reads the same attributes the real elements read (src, header, labels/categories,
// initial-value) and lays the task out the way a worker sees it: the image with any
// pre-drawn boxes, the label choices, short instructions with the examples in a side panel
// and the full instructions behind a link. Text is set with textContent, never innerHTML.
(function () {
  "use strict";

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function parseJson(text, fallback, problems, what) {
    if (text === null || text === "") { return fallback; }
    try { return JSON.parse(text); } catch (err) {
      problems.push(what + " is not valid JSON: " + err.message);
      return fallback;
    }
  }

  function placeBoxes(image, boxes) {
    var w = image.naturalWidth, h = image.naturalHeight;
    if (!w || !h) { return; }
    boxes.forEach(function (entry) {
      var b = entry.box, node = entry.node;
      node.style.left = (100 * b.left / w) + "%";
      node.style.top = (100 * b.top / h) + "%";
      node.style.width = (100 * b.width / w) + "%";
      node.style.height = (100 * b.height / h) + "%";
    });
  }

  function buildTask(task, kind, problems) {
    var layout = make("div", "gt-shim-layout");
    var side = make("aside", "gt-shim-side");
    var main = make("section", "gt-shim-main");
    main.appendChild(make("h2", "gt-shim-header", task.getAttribute("header") || ""));

    var stage = make("figure", "gt-shim-stage");
    var image = make("img", "gt-shim-task-image");
    image.alt = "task image";
    image.src = task.getAttribute("src") || "";
    stage.appendChild(image);
    main.appendChild(stage);

    var attr = kind === "bounding-box" ? "labels" : "categories";
    var labels = parseJson(task.getAttribute(attr), [], problems, attr);
    if (!Array.isArray(labels)) { problems.push(attr + " is not a JSON array"); labels = []; }
    var list = make("ul", "gt-shim-labels");
    list.setAttribute("aria-label", "label choices");
    labels.forEach(function (label) {
      var item = make("li", "gt-shim-label");
      if (kind === "bounding-box") {
        item.textContent = String(label);
      } else {
        var input = make("input");
        input.type = kind === "multi-select" ? "checkbox" : "radio";
        input.name = task.getAttribute("name") || "category";
        var text = make("label", null, String(label));
        text.prepend(input);
        item.appendChild(text);
      }
      list.appendChild(item);
    });
    main.appendChild(list);

    if (kind === "bounding-box") {
      var initial = parseJson(task.getAttribute("initial-value"), [], problems, "initial-value");
      var placed = [];
      (Array.isArray(initial) ? initial : []).forEach(function (box) {
        var node = make("div", "gt-shim-box");
        node.dataset.label = String(box.label);
        node.appendChild(make("span", "gt-shim-box-label", box.label));
        stage.appendChild(node);
        placed.push({ box: box, node: node });
      });
      if (image.complete) { placeBoxes(image, placed); }
      image.addEventListener("load", function () { placeBoxes(image, placed); });
    }

    var shortI = task.querySelector("short-instructions");
    var fullI = task.querySelector("full-instructions");
    if (fullI) {
      var details = make("details", "gt-shim-full");
      details.appendChild(make("summary", null,
        "View full instructions: " + (fullI.getAttribute("header") || "")));
      details.appendChild(fullI);
      side.appendChild(details);
    }
    if (shortI) { side.insertBefore(shortI, side.firstChild); }
    layout.appendChild(side);
    layout.appendChild(main);
    task.appendChild(layout);
  }

  function run() {
    var problems = [];
    var kinds = {
      "crowd-bounding-box": "bounding-box",
      "crowd-image-classifier": "single",
      "crowd-image-classifier-multi-select": "multi-select"
    };
    Object.keys(kinds).forEach(function (tag) {
      document.querySelectorAll(tag).forEach(function (task) {
        buildTask(task, kinds[tag], problems);
      });
    });
    document.querySelectorAll("crowd-form").forEach(function (form) {
      var button = make("button", "gt-shim-submit", "Submit");
      button.type = "button";
      button.disabled = true;
      button.title = "Preview only";
      form.appendChild(button);
    });
    if (problems.length) {
      var box = make("pre", "gt-shim-problems", problems.join("\n"));
      document.body.insertBefore(box, document.body.firstChild);
    }
    document.documentElement.setAttribute("data-gt-shim", problems.length ? "problems" : "ready");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", run);
  } else {
    run();
  }
})();
