"""A Sphinx extension of the book's own: `helpers`' docstrings shown verbatim on the API page.

The course's docstrings are plain text laid out for a terminal and for `help()` (shapes, equations and tables
in aligned columns; see STYLE.md), not reStructuredText. Parsed as reST they would lose their layout and raise
warnings, so autodoc receives each one as a plain-text code block (no highlighting), shown as `help()` shows it.
"""


def _as_literal_block(app, what, name, obj, options, lines):
    if any(line.strip() for line in lines):
        body = ["    " + line if line.strip() else "" for line in lines]
        lines[:] = [".. code-block:: text", ""] + body + [""]


def setup(app):
    app.connect("autodoc-process-docstring", _as_literal_block)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
