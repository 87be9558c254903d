"""Markdown reference tables generated from the catalog (`deeptrain catalog`; the README embeds them)."""

from __future__ import annotations

from deeptrain_api import catalog

BEGIN_MARKER = "<!-- BEGIN deeptrain catalog -->"
END_MARKER = "<!-- END deeptrain catalog -->"


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def model_types_table() -> str:
    rows = ["| modelType | templates | primary metric | what it learns |", "|---|---|---|---|"]
    for mt in catalog.MODEL_TYPES.values():
        rows.append(f"| `{mt.name}` | {', '.join(f'`{t}`' for t in mt.templates)} | `{mt.primary_metric}` | {mt.description} |")
    return "\n".join(rows)


def hyperparameters_table() -> str:
    types = list(catalog.MODEL_TYPES)
    short = {name: name.replace("visual-", "").replace("-classifier", "-cls") for name in types}
    header = "| hyperparameter | type | range | schema default | " + " | ".join(short[t] for t in types) + " | meaning |"
    rows = [header, "|" + "---|" * (5 + len(types))]
    for hp in sorted(catalog.HYPERPARAMETERS.values(), key=lambda hp: hp.name):
        per_type = []
        for name in types:
            if name not in hp.model_types:
                per_type.append("n/a")
            else:
                per_type.append(_cell(catalog.MODEL_TYPES[name].defaults.get(hp.name, hp.default)))
        rows.append(
            f"| `{hp.name}` | {hp.type} | {hp.range_text()} | {_cell(hp.schema_default)} | "
            + " | ".join(per_type) + f" | {hp.description} |"
        )
    return "\n".join(rows)


def catalog_markdown() -> str:
    return "\n\n".join([
        "#### Model types and templates", model_types_table(),
        "#### Hyperparameters",
        "The per-type columns show the effective default (`-`: none, the value must be given or is computed; "
        "`n/a`: rejected for that type). `lrate` is always computed and shown in `status.hyperparameters`.",
        hyperparameters_table(),
    ]) + "\n"
