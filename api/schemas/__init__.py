"""Request and response bodies, one module per resource (`...In` comes in, `...Public` goes out).

A response schema is the one JSON form of its resource: it is validated from the core's frozen
dataclass (`from_attributes`), converting bytes to 0x-hex and meter ids to their text on the
way, so neither the core nor a route builds that JSON by hand. FastAPI's `response_model`
validates a route's return value the same way, so a route may return the core object itself.
"""
