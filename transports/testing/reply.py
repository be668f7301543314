"""The reply type the capture server is configured with."""

#: A reply the server gives on cue: code and text, e.g. ``(550, "5.1.1 No such user")``.
Reply = tuple[int, str]
