"""`mha compare`'s renderers: the rich tables, Markdown, and the lines both share."""
