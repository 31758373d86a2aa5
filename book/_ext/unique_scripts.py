"""A Sphinx extension of the book's own: each page loads each script once.

With Sphinx 7.4 and Jupyter Book 1.0, the inline scripts that sphinx-thebe and sphinx-togglebutton add
while the build runs reach every page twice, and the second `const THEBE_JS_URL = ...` is a JavaScript
error in the reader's console (tests/test_browser.py caught it). This drops the repeats, keeping the order.
"""


def _unique_scripts(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # the same inline script arrives once with filename None and once with '' (Sphinx's registry)
        key = (getattr(script, "filename", None) or "", repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
