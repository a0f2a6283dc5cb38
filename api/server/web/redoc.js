// ReDoc for this API's OpenAPI document, served from this origin only (no CDN, no web fonts).
Redoc.init("/openapi.json", { hideDownloadButton: false }, document.getElementById("redoc"));
