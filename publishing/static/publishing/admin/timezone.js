/* Tell the admin the editor's time zone: the browser's, kept in a cookie under the admin's path
   (publishing/middleware.py activates it, so dates are shown and read in that zone). A page
   that shows times reloads once when the zone was unknown or has changed (travel). */
(function () {
  "use strict";
  var script = document.currentScript;
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (error) {
    return;
  }
  // IANA names (Europe/Paris, America/Argentina/Buenos_Aires, Etc/GMT+2) are cookie-safe as is.
  if (!zone || !script || !/^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone)) {
    return;
  }
  var match = document.cookie.match(/(?:^|;\s*)admin_tz=([^;]*)/);
  if (match && match[1] === zone) {
    return;
  }
  document.cookie = "admin_tz=" + zone + "; path=" + (script.dataset.path || "/") +
    "; max-age=31536000; SameSite=Lax" + (location.protocol === "https:" ? "; Secure" : "");
  var stored = document.cookie.match(/(?:^|;\s*)admin_tz=([^;]*)/);
  if (script.dataset.reload === "1" && stored && stored[1] === zone) {
    location.reload();
  }
})();
