"""deeptrain command line (`deeptrain`, defined in .main): the top layer.

The only package that reaches both sides: deeptrain_api for `crds`, `validate` and `catalog`, the
trainer for the commands that run on this machine (`run`, `predict`, `data`, `workflow`, `index`,
`search`). Nothing imports it (.importlinter).
"""
