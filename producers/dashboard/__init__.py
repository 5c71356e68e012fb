"""The ops dashboard served by ``callq serve`` under ``/dashboard/`` (issue 15): server-rendered pages
(Jinja2 templates and a small script, shipped in the package), inline SVG plots, logins with the
API's tokens. See docs/dashboard.md."""
