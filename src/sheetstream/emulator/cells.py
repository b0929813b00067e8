"""Cell values in and out: how a written value is stored, and how a stored value is rendered and trimmed.

A cell stores what the user entered: a literal (string, number, boolean) or a formula with the last value it
produced. Formulas are not evaluated: a formula written through the API has no value until a seed file or an
`updateCells` request gives it one, so FORMATTED_VALUE and UNFORMATTED_VALUE show "" for it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

Scalar = str | int | float | bool
RenderOption = Literal["FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"]
RENDER_OPTIONS: Final = ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")
INPUT_OPTIONS: Final = ("RAW", "USER_ENTERED")

_NUMBER = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")


@dataclass(frozen=True, slots=True)
class Cell:
    """A non-empty cell: a literal value, or a formula and the value it last produced (None: never computed)."""

    value: Scalar | None
    formula: str | None = None


class Skip:
    """Marker for a `null` in written values: the cell keeps what it holds."""


SKIP: Final = Skip()


class ValueInputError(ValueError):
    """A written value that is not a string, number or boolean."""


def parse_input(raw: Any, user_entered: bool) -> Cell | Skip | None:
    """The cell a written JSON value makes: None clears it, SKIP leaves it; USER_ENTERED parses text like the UI."""
    if raw is None:
        return SKIP
    if isinstance(raw, bool):
        return Cell(raw)
    if isinstance(raw, int | float):
        if isinstance(raw, float) and not math.isfinite(raw):
            raise ValueInputError(f"number_value: {raw}")
        return Cell(raw)
    if not isinstance(raw, str):
        kind = "list_value" if isinstance(raw, list) else "struct_value"
        raise ValueInputError(kind)
    if raw == "":
        return None
    if not user_entered:
        return Cell(raw)
    if raw.startswith("=") and len(raw) > 1:
        return Cell(None, formula=raw)
    if raw.startswith("'"):
        return Cell(raw[1:]) if len(raw) > 1 else None
    if raw.strip().upper() in ("TRUE", "FALSE"):
        return Cell(raw.strip().upper() == "TRUE")
    if _NUMBER.fullmatch(raw):
        return Cell(json_number(float(raw)))
    return Cell(raw)


def from_extended(value: dict[str, Any] | None) -> Cell | None:
    """The cell an ExtendedValue (`userEnteredValue` of CellData) makes; None or {} clears it."""
    if not value:
        return None
    if "formulaValue" in value:
        return Cell(None, formula=str(value["formulaValue"]))
    if "numberValue" in value:
        return Cell(value["numberValue"])
    if "boolValue" in value:
        return Cell(bool(value["boolValue"]))
    if "stringValue" in value:
        return Cell(str(value["stringValue"])) if value["stringValue"] != "" else None
    raise ValueInputError(f"unsupported ExtendedValue {sorted(value)}")


def format_number(number: int | float) -> str:
    """A number in the sheet's automatic format: integers plainly, others to 10 significant digits (1E+20)."""
    if isinstance(number, int) or (number.is_integer() and abs(number) < 1e15):
        return str(int(number))
    text = f"{number:.10g}"
    return text.upper() if "e" in text else text


def json_number(number: int | float) -> int | float:
    """A number as Google writes it in JSON: integral values without a fraction."""
    if isinstance(number, float) and number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number


def render(cell: Cell | None, option: RenderOption) -> Scalar | None:
    """What the values API shows for a cell; None for an empty cell (trimmed or shown as "")."""
    if cell is None:
        return None
    if cell.formula is not None and option == "FORMULA":
        return cell.formula
    value = cell.value
    if value is None:
        return ""
    if option == "FORMATTED_VALUE":
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int | float):
            return format_number(value)
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return json_number(value)
    return value


def extended(value: Scalar) -> dict[str, Any]:
    """An ExtendedValue for a literal."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int | float):
        return {"numberValue": json_number(value)}
    return {"stringValue": value}


def cell_data(cell: Cell | None) -> dict[str, Any]:
    """The CellData of `spreadsheets.get` with grid data: entered, effective and formatted values."""
    if cell is None:
        return {}
    data: dict[str, Any] = {}
    if cell.formula is not None:
        data["userEnteredValue"] = {"formulaValue": cell.formula}
    elif cell.value is not None:
        data["userEnteredValue"] = extended(cell.value)
    if cell.value is not None:
        data["effectiveValue"] = extended(cell.value)
    formatted = render(cell, "FORMATTED_VALUE")
    if formatted not in (None, ""):
        data["formattedValue"] = formatted
    return data


def trim(block: list[list[Any]]) -> list[list[Any]]:
    """Google's trimming: drop trailing empty (None) cells of each row and trailing empty rows; inner gaps become ""."""
    rows = [_trim_row(row) for row in block]
    while rows and not rows[-1]:
        rows.pop()
    return [["" if v is None else v for v in row] for row in rows]


def _trim_row(row: list[Any]) -> list[Any]:
    end = len(row)
    while end and row[end - 1] is None:
        end -= 1
    return row[:end]


def transpose(block: list[list[Any]], width: int) -> list[list[Any]]:
    """Rows to columns (or back) for majorDimension=COLUMNS, padding ragged rows with None."""
    return [[row[c] if c < len(row) else None for row in block] for c in range(width)]
