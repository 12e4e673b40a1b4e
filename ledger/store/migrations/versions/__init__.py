"""One module per schema revision, each naming its `down_revision` (README "Where data lives")."""
