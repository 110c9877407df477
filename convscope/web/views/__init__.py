"""HTML of the pages, as plain functions of the data dicts from :mod:`convscope.web.compute`.

The server and the static report render the same functions; nothing here runs a model."""
