/* The publication editor's image row: upload an image with its alt text and insert its
 * Markdown at the cursor; images dropped or pasted into the text (markdownx's own upload) are
 * asked for their alt text when they arrive. No library, no network call but our own URLs. */
(function () {
  "use strict";

  function csrfToken() {
    var field = document.querySelector("input[name='csrfmiddlewaretoken']");
    return field ? field.value : "";
  }

  function insertAtCursor(editor, text) {
    var start = editor.selectionStart, end = editor.selectionEnd;
    var before = editor.value.substring(0, start);
    var glue = before && !/\n$/.test(before) ? "\n\n" : "";
    editor.value = before + glue + text + "\n\n" + editor.value.substring(end);
    editor.selectionStart = editor.selectionEnd = start + glue.length + text.length;
    // markdownx refreshes its preview on "input".
    editor.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function firstError(body) {
    try {
      var errors = JSON.parse(body);
      var key = Object.keys(errors)[0];
      return key ? errors[key][0] : "";
    } catch (e) {
      return "";
    }
  }

  function setUp(root) {
    var editor = root.querySelector(".markdownx-editor");
    var row = root.querySelector(".publication-editor-image");
    if (!editor || !row || row.hasAttribute("data-ready")) return;
    row.setAttribute("data-ready", "");
    var file = row.querySelector(".publication-editor-image-file");
    var alt = row.querySelector(".publication-editor-image-alt");
    var button = row.querySelector(".publication-editor-image-upload");
    var status = row.querySelector(".publication-editor-image-status");

    function say(key, detail, isError) {
      status.textContent = (status.getAttribute("data-" + key) || "") + (detail ? " " + detail : "");
      status.classList.toggle("errornote", !!isError);
    }

    button.addEventListener("click", function () {
      if (!file.files.length) return say("need-file", "", true);
      if (!alt.value.trim()) { alt.focus(); return say("need-alt", "", true); }
      var data = new FormData();
      data.append("image", file.files[0]);
      data.append("alt", alt.value.trim());
      data.append("csrfmiddlewaretoken", csrfToken());
      button.disabled = true;
      say("uploading");
      var request = new XMLHttpRequest();
      request.open("POST", row.getAttribute("data-upload-url"));
      request.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      request.onload = function () {
        button.disabled = false;
        if (request.status === 200) {
          insertAtCursor(editor, JSON.parse(request.responseText).image_code);
          file.value = "";
          alt.value = "";
          say("done");
        } else {
          say("failed", firstError(request.responseText), true);
        }
      };
      request.onerror = function () { button.disabled = false; say("failed", "", true); };
      request.send(data);
    });

    // An image dropped or pasted into the text arrives as ![](url): ask for its alt text.
    root.addEventListener("markdownx.fileUploadEnd", function (event) {
      var code = event.detail && event.detail[0] && event.detail[0].image_code;
      if (!code || code.indexOf("![](") !== 0) return;
      var answer = window.prompt(status.getAttribute("data-prompt") || "");
      var text = (answer || "").replace(/[\[\]\\\n\r]+/g, " ").trim();
      var at = editor.value.indexOf(code);
      if (at < 0) return;
      // markdownx inserts at the cursor, glued to the text around it: give the image a
      // paragraph of its own, so "# Heading" after it stays a heading.
      var before = editor.value.substring(0, at).replace(/\s*$/, "");
      var after = editor.value.substring(at + code.length).replace(/^\s*/, "");
      var image = "![" + text + "]" + code.substring(3);
      editor.value = (before ? before + "\n\n" : "") + image + (after ? "\n\n" + after : "\n");
      editor.dispatchEvent(new Event("input", { bubbles: true }));
      if (text) {
        say("done");
      } else {
        say("missing", "", true);
      }
    });
    // markdownx writes "Invalid response" into the text when an upload is refused: take it
    // out again and show the server's reason instead.
    root.addEventListener("markdownx.fileUploadError", function (event) {
      editor.value = editor.value.replace("Invalid response", "");
      var detail = event.detail && event.detail[0];
      var reason = detail && detail.image ? detail.image[0] : "";
      say("failed", reason, true);
      editor.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }

  function setUpAll() {
    Array.prototype.forEach.call(document.querySelectorAll(".publication-editor"), setUp);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUpAll);
  } else {
    setUpAll();
  }
})();
